#include "storage/fault_injection_file_system.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace kole::storage {
namespace {

// Drops trailing slashes so that "/data/" and "/data" name one directory.
std::string Normalize(std::string_view path) {
  std::string out(path);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Parent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

absl::Status CrashedHandle(std::string_view path) {
  return absl::FailedPreconditionError(
      fmt::format("file {} was open across a simulated crash", path));
}

}  // namespace

struct FaultInjectionFileSystem::Inode {
  std::string contents;  // What reads see.
  std::string durable;   // What survives a crash.
};

class FaultInjectionFileSystem::File final : public WritableFile {
 public:
  File(FaultInjectionFileSystem* fs, std::string path, std::shared_ptr<Inode> inode,
       uint64_t generation)
      : fs_(fs), path_(std::move(path)), inode_(std::move(inode)), generation_(generation) {}

  absl::Status Append(std::string_view data) override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = CheckUsable(); !s.ok()) return s;
    uint64_t used = fs_->BytesUsedLocked();
    uint64_t room = used >= fs_->space_limit_ ? 0 : fs_->space_limit_ - used;
    if (data.size() > room) {
      // A full disk still takes the bytes that fit, as write(2) does.
      inode_->contents.append(data.substr(0, room));
      return absl::ResourceExhaustedError(fmt::format("write {}: No space left on device", path_));
    }
    inode_->contents.append(data);
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    absl::Duration delay;
    {
      absl::MutexLock lock(&fs_->mu_);
      delay = fs_->sync_delay_;
    }
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);

    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = CheckUsable(); !s.ok()) return s;
    if (!fs_->sync_failure_.ok()) return fs_->sync_failure_;
    inode_->durable = inode_->contents;
    ++fs_->sync_count_;
    return absl::OkStatus();
  }

  absl::Status Close() override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = CheckUsable(); !s.ok()) return s;
    closed_ = true;
    return absl::OkStatus();
  }

  uint64_t Size() const override {
    absl::MutexLock lock(&fs_->mu_);
    return inode_->contents.size();
  }

 private:
  absl::Status CheckUsable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(fs_->mu_) {
    if (absl::Status s = fs_->CheckPowerLocked(); !s.ok()) return s;
    if (generation_ != fs_->generation_) return CrashedHandle(path_);
    if (closed_) return absl::FailedPreconditionError(fmt::format("file {} is closed", path_));
    return absl::OkStatus();
  }

  FaultInjectionFileSystem* const fs_;
  const std::string path_;
  const std::shared_ptr<Inode> inode_;
  const uint64_t generation_;
  bool closed_ = false;
};

class FaultInjectionFileSystem::Reader final : public SequentialFile {
 public:
  Reader(FaultInjectionFileSystem* fs, std::string path, std::shared_ptr<Inode> inode,
         uint64_t generation)
      : fs_(fs), path_(std::move(path)), inode_(std::move(inode)), generation_(generation) {}

  absl::Status Read(size_t n, std::string* out) override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = fs_->CheckPowerLocked(); !s.ok()) return s;
    if (generation_ != fs_->generation_) return CrashedHandle(path_);
    const std::string& contents = inode_->contents;
    size_t start = std::min<uint64_t>(position_, contents.size());
    out->assign(contents, start, n);
    position_ = start + out->size();
    return absl::OkStatus();
  }

  absl::Status Skip(uint64_t n) override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = fs_->CheckPowerLocked(); !s.ok()) return s;
    if (generation_ != fs_->generation_) return CrashedHandle(path_);
    position_ = std::min<uint64_t>(position_ + n, inode_->contents.size());
    return absl::OkStatus();
  }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::string path_;
  const std::shared_ptr<Inode> inode_;
  const uint64_t generation_;
  uint64_t position_ = 0;
};

class FaultInjectionFileSystem::Lock final : public FileLock {
 public:
  Lock(FaultInjectionFileSystem* fs, std::string path, uint64_t generation)
      : fs_(fs), path_(std::move(path)), generation_(generation) {}

  ~Lock() override {
    absl::MutexLock lock(&fs_->mu_);
    // After a crash the lock died with the process; a newer holder owns it now.
    if (generation_ == fs_->generation_) fs_->locked_.erase(path_);
  }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::string path_;
  const uint64_t generation_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(uint64_t seed) : rng_(seed) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

absl::Status FaultInjectionFileSystem::CheckPowerLocked() const {
  if (!power_off_) return absl::OkStatus();
  return absl::UnavailableError("simulated power cut: the disk is gone");
}

absl::Status FaultInjectionFileSystem::CheckParentExists(const std::string& path) const {
  std::string parent = Parent(path);
  if (parent == "." || parent == "/" || dirs_.contains(parent)) return absl::OkStatus();
  return absl::NotFoundError(fmt::format("create {}: No such file or directory", path));
}

uint64_t FaultInjectionFileSystem::BytesUsedLocked() const {
  uint64_t used = 0;
  for (const auto& [name, inode] : live_) used += inode->contents.size();
  return used;
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::OpenForWrite(
    const std::string& raw_path, bool truncate) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  if (dirs_.contains(path)) {
    return absl::FailedPreconditionError(fmt::format("create {}: Is a directory", path));
  }
  std::shared_ptr<Inode>& inode = live_[path];
  if (inode == nullptr) {
    if (absl::Status s = CheckParentExists(path); !s.ok()) {
      live_.erase(path);
      return s;
    }
    inode = std::make_shared<Inode>();
  } else if (truncate) {
    // O_TRUNC keeps the inode; the old durable contents stay until a Sync.
    inode->contents.clear();
  }
  return std::make_unique<File>(this, path, inode, generation_);
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewWritableFile(
    const std::string& path) {
  return OpenForWrite(path, /*truncate=*/true);
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewAppendableFile(
    const std::string& path) {
  return OpenForWrite(path, /*truncate=*/false);
}

absl::StatusOr<std::unique_ptr<SequentialFile>> FaultInjectionFileSystem::NewSequentialFile(
    const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  auto it = live_.find(path);
  if (it == live_.end()) {
    return absl::NotFoundError(fmt::format("open {}: No such file or directory", path));
  }
  return std::make_unique<Reader>(this, path, it->second, generation_);
}

absl::StatusOr<uint64_t> FaultInjectionFileSystem::GetFileSize(const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  auto it = live_.find(path);
  if (it == live_.end()) {
    return absl::NotFoundError(fmt::format("stat {}: No such file or directory", path));
  }
  return it->second->contents.size();
}

bool FaultInjectionFileSystem::FileExists(const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (power_off_) return false;
  return live_.contains(path) || dirs_.contains(path) || path == "." || path == "/";
}

absl::StatusOr<std::vector<std::string>> FaultInjectionFileSystem::ListDir(
    const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  if (path != "." && path != "/" && !dirs_.contains(path)) {
    return absl::NotFoundError(fmt::format("opendir {}: No such file or directory", path));
  }
  std::set<std::string> names;
  for (const auto& [name, inode] : live_) {
    if (Parent(name) == path) names.insert(BaseName(name));
  }
  for (const std::string& dir : dirs_) {
    if (Parent(dir) == path) names.insert(BaseName(dir));
  }
  return std::vector<std::string>(names.begin(), names.end());
}

absl::Status FaultInjectionFileSystem::CreateDirIfMissing(const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string prefix = path.substr(0, pos);
    if (live_.contains(prefix)) {
      return absl::FailedPreconditionError(fmt::format("mkdir {}: Not a directory", prefix));
    }
    if (!prefix.empty() && prefix != "/" && prefix != ".") dirs_.insert(prefix);
    if (pos == std::string::npos) break;
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::RemoveFile(const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  if (live_.erase(path) == 0) {
    return absl::NotFoundError(fmt::format("unlink {}: No such file or directory", path));
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::RenameFile(const std::string& raw_from,
                                                  const std::string& raw_to) {
  std::string from = Normalize(raw_from);
  std::string to = Normalize(raw_to);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  auto it = live_.find(from);
  if (it == live_.end()) {
    return absl::NotFoundError(fmt::format("rename {} to {}: No such file or directory", from, to));
  }
  if (absl::Status s = CheckParentExists(to); !s.ok()) return s;
  if (from == to) return absl::OkStatus();
  std::shared_ptr<Inode> inode = it->second;
  live_.erase(it);
  live_[to] = std::move(inode);
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::TruncateFile(const std::string& raw_path, uint64_t size) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  auto it = live_.find(path);
  if (it == live_.end()) {
    return absl::NotFoundError(fmt::format("open {}: No such file or directory", path));
  }
  if (!sync_failure_.ok()) return sync_failure_;
  it->second->contents.resize(size, '\0');
  it->second->durable = it->second->contents;
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::SyncDir(const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  if (path != "." && path != "/" && !dirs_.contains(path)) {
    return absl::NotFoundError(fmt::format("open directory {}: No such file or directory", path));
  }
  if (!sync_failure_.ok()) return sync_failure_;
  for (auto it = durable_.begin(); it != durable_.end();) {
    it = Parent(it->first) == path && !live_.contains(it->first) ? durable_.erase(it) : ++it;
  }
  for (const auto& [name, inode] : live_) {
    if (Parent(name) == path) durable_[name] = inode;
  }
  ++dir_sync_count_;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileLock>> FaultInjectionFileSystem::LockFile(
    const std::string& raw_path) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckPowerLocked(); !s.ok()) return s;
  if (locked_.contains(path)) {
    auto it = live_.find(path);
    std::string holder;
    if (it != live_.end()) holder = it->second->contents.substr(0, it->second->contents.find('\n'));
    return absl::FailedPreconditionError(
        holder.empty()
            ? fmt::format("lock file {} is held by another process", path)
            : fmt::format("lock file {} is held by another process (pid {})", path, holder));
  }
  std::shared_ptr<Inode>& inode = live_[path];
  if (inode == nullptr) {
    if (absl::Status s = CheckParentExists(path); !s.ok()) {
      live_.erase(path);
      return s;
    }
    inode = std::make_shared<Inode>();
  }
  inode->contents = fmt::format("{}\n", ::getpid());
  locked_.insert(path);
  return std::make_unique<Lock>(this, path, generation_);
}

void FaultInjectionFileSystem::CutPower() {
  absl::MutexLock lock(&mu_);
  power_off_ = true;
}

void FaultInjectionFileSystem::SimulateCrash(CrashMode mode) {
  absl::MutexLock lock(&mu_);
  std::set<Inode*> done;
  for (auto& [name, inode] : durable_) {
    if (!done.insert(inode.get()).second) continue;
    std::string& contents = inode->contents;
    const std::string& durable = inode->durable;
    std::string survived = durable;
    // Only bytes appended after the last sync can survive partially; anything
    // else (an unsynced O_TRUNC) reverts to the synced contents.
    bool appended_only =
        contents.size() > durable.size() && contents.compare(0, durable.size(), durable) == 0;
    if (mode != CrashMode::kDropUnsynced && appended_only) {
      uint64_t unsynced = contents.size() - durable.size();
      uint64_t keep = std::uniform_int_distribution<uint64_t>(0, unsynced)(rng_);
      survived.append(contents, durable.size(), keep);
      if (mode == CrashMode::kTearUnsyncedWithGarbage) {
        uint64_t garbage = std::uniform_int_distribution<uint64_t>(1, 64)(rng_);
        std::uniform_int_distribution<int> byte(0, 255);
        for (uint64_t i = 0; i < garbage; ++i) survived.push_back(static_cast<char>(byte(rng_)));
      }
    }
    inode->contents = survived;
    inode->durable = std::move(survived);
  }
  live_ = durable_;
  locked_.clear();
  ++generation_;
  power_off_ = false;
}

void FaultInjectionFileSystem::SetSpaceLimit(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  space_limit_ = bytes;
}

void FaultInjectionFileSystem::SetSyncFailure(absl::Status status) {
  absl::MutexLock lock(&mu_);
  sync_failure_ = std::move(status);
}

void FaultInjectionFileSystem::SetSyncDelay(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  sync_delay_ = delay;
}

absl::Status FaultInjectionFileSystem::CorruptByte(const std::string& raw_path, uint64_t offset,
                                                   uint8_t mask) {
  std::string path = Normalize(raw_path);
  absl::MutexLock lock(&mu_);
  auto it = live_.find(path);
  if (it == live_.end()) return absl::NotFoundError(fmt::format("corrupt {}: no such file", path));
  Inode& inode = *it->second;
  if (offset >= inode.contents.size()) {
    return absl::OutOfRangeError(fmt::format("corrupt {}: offset {} is past the end ({} bytes)",
                                             path, offset, inode.contents.size()));
  }
  inode.contents[offset] = static_cast<char>(inode.contents[offset] ^ mask);
  if (offset < inode.durable.size()) {
    inode.durable[offset] = static_cast<char>(inode.durable[offset] ^ mask);
  }
  return absl::OkStatus();
}

uint64_t FaultInjectionFileSystem::sync_count() const {
  absl::MutexLock lock(&mu_);
  return sync_count_;
}

uint64_t FaultInjectionFileSystem::dir_sync_count() const {
  absl::MutexLock lock(&mu_);
  return dir_sync_count_;
}

uint64_t FaultInjectionFileSystem::bytes_used() const {
  absl::MutexLock lock(&mu_);
  return BytesUsedLocked();
}

}  // namespace kole::storage

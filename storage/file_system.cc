#include "storage/file_system.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace kole::storage {
namespace {

// Retries a system call interrupted by a signal.
template <typename F>
auto RetryOnEintr(F call) {
  decltype(call()) result;
  do {
    result = call();
  } while (result < 0 && errno == EINTR);
  return result;
}

absl::Status CloseFd(int fd, std::string_view path) {
  // close() must not be retried on EINTR on Linux: the descriptor is gone.
  if (::close(fd) != 0) return PosixError("close", path, errno);
  return absl::OkStatus();
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}

  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(std::string_view data) override {
    if (fd_ < 0) return Closed();
    while (!data.empty()) {
      ssize_t n = RetryOnEintr([&] { return ::write(fd_, data.data(), data.size()); });
      if (n < 0) return PosixError("write", path_, errno);
      // A short write is not an error; the next write reports why it stopped.
      size_ += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (fd_ < 0) return Closed();
    if (RetryOnEintr([&] { return ::fdatasync(fd_); }) != 0) {
      return PosixError("fdatasync", path_, errno);
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    if (fd_ < 0) return Closed();
    int fd = fd_;
    fd_ = -1;
    return CloseFd(fd, path_);
  }

  uint64_t Size() const override { return size_; }

 private:
  absl::Status Closed() const {
    return absl::FailedPreconditionError(fmt::format("file {} is already closed", path_));
  }

  const std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixSequentialFile() override { ::close(fd_); }

  absl::Status Read(size_t n, std::string* out) override {
    out->resize(n);
    size_t filled = 0;
    while (filled < n) {
      ssize_t got = RetryOnEintr([&] { return ::read(fd_, out->data() + filled, n - filled); });
      if (got < 0) {
        out->clear();
        return PosixError("read", path_, errno);
      }
      if (got == 0) break;
      filled += static_cast<size_t>(got);
    }
    out->resize(filled);
    return absl::OkStatus();
  }

  absl::Status Skip(uint64_t n) override {
    if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) return PosixError("lseek", path_, errno);
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  const int fd_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  // Closing the descriptor releases the flock. The file itself stays: removing
  // it would race with a process that has just opened it to lock.
  ~PosixFileLock() override { ::close(fd_); }

 private:
  const int fd_;
};

absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, int flags,
                                                           std::string_view op) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644); });
  if (fd < 0) return PosixError(op, path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return PosixError("fstat", path, saved);
  }
  return std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size));
}

// Reads the first line of a lock file to name the process holding it.
std::string ReadLockHolder(int fd) {
  char buf[32];
  ssize_t n = RetryOnEintr([&] { return ::pread(fd, buf, sizeof(buf) - 1, 0); });
  if (n <= 0) return "";
  std::string text(buf, static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  bool digits = !text.empty() &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  return digits ? text : "";
}

}  // namespace

absl::Status PosixError(std::string_view op, std::string_view path, int error_number) {
  std::string message = fmt::format("{} {}: {}", op, path, std::strerror(error_number));
  switch (error_number) {
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
    case ENOTEMPTY:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
    case EROFS:  // Not FailedPrecondition: DataDir reads that as "locked".
      return absl::PermissionDeniedError(message);
    case EWOULDBLOCK:
    case ENOTDIR:
    case EISDIR:
    case EBUSY:
      return absl::FailedPreconditionError(message);
    case ENAMETOOLONG:
    case EINVAL:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (out.empty()) return std::string(name);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

absl::StatusOr<std::string> FileSystem::ReadFileToString(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = NewSequentialFile(path);
  if (!file.ok()) return file.status();
  std::string contents;
  std::string chunk;
  constexpr size_t kChunk = 1 << 20;
  do {
    if (absl::Status s = (*file)->Read(kChunk, &chunk); !s.ok()) return s;
    contents += chunk;
  } while (chunk.size() == kChunk);
  return contents;
}

absl::StatusOr<std::unique_ptr<WritableFile>> PosixFileSystem::NewWritableFile(
    const std::string& path) {
  return OpenWritable(path, O_CREAT | O_TRUNC, "create");
}

absl::StatusOr<std::unique_ptr<WritableFile>> PosixFileSystem::NewAppendableFile(
    const std::string& path) {
  return OpenWritable(path, O_CREAT | O_APPEND, "open for append");
}

absl::StatusOr<std::unique_ptr<SequentialFile>> PosixFileSystem::NewSequentialFile(
    const std::string& path) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) return PosixError("open", path, errno);
  return std::make_unique<PosixSequentialFile>(path, fd);
}

absl::StatusOr<uint64_t> PosixFileSystem::GetFileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
  return static_cast<uint64_t>(st.st_size);
}

bool PosixFileSystem::FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::vector<std::string>> PosixFileSystem::ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return PosixError("opendir", path, errno);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int saved = errno;
  ::closedir(dir);
  if (saved != 0) return PosixError("readdir", path, saved);
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status PosixFileSystem::CreateDirIfMissing(const std::string& path) {
  // Create each missing ancestor in turn, as mkdir -p does.
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string prefix = path.substr(0, pos);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return PosixError("mkdir", prefix, errno);
    }
    if (pos == std::string::npos) break;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
  if (!S_ISDIR(st.st_mode)) return PosixError("mkdir", path, ENOTDIR);
  return absl::OkStatus();
}

absl::Status PosixFileSystem::RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
  return absl::OkStatus();
}

absl::Status PosixFileSystem::RenameFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return PosixError("rename", fmt::format("{} to {}", from, to), errno);
  }
  return absl::OkStatus();
}

absl::Status PosixFileSystem::TruncateFile(const std::string& path, uint64_t size) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_WRONLY | O_CLOEXEC); });
  if (fd < 0) return PosixError("open", path, errno);
  absl::Status status;
  if (RetryOnEintr([&] { return ::ftruncate(fd, static_cast<off_t>(size)); }) != 0) {
    status = PosixError("ftruncate", path, errno);
  } else if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) {
    status = PosixError("fsync", path, errno);
  }
  absl::Status closed = CloseFd(fd, path);
  return status.ok() ? closed : status;
}

absl::Status PosixFileSystem::SyncDir(const std::string& path) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) return PosixError("open directory", path, errno);
  absl::Status status;
  if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) status = PosixError("fsync", path, errno);
  absl::Status closed = CloseFd(fd, path);
  return status.ok() ? closed : status;
}

absl::StatusOr<std::unique_ptr<FileLock>> PosixFileSystem::LockFile(const std::string& path) {
  // O_TRUNC would wipe the holder's pid before we know whether we get the lock.
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644); });
  if (fd < 0) return PosixError("open lock file", path, errno);

  if (RetryOnEintr([&] { return ::flock(fd, LOCK_EX | LOCK_NB); }) != 0) {
    int saved = errno;
    std::string holder = saved == EWOULDBLOCK ? ReadLockHolder(fd) : "";
    ::close(fd);
    if (saved != EWOULDBLOCK) return PosixError("flock", path, saved);
    return absl::FailedPreconditionError(
        holder.empty()
            ? fmt::format("lock file {} is held by another process", path)
            : fmt::format("lock file {} is held by another process (pid {})", path, holder));
  }

  // Record who holds the lock so that a second process can name us.
  std::string pid = fmt::format("{}\n", ::getpid());
  int write_error = 0;
  if (::ftruncate(fd, 0) != 0) {
    write_error = errno;
  } else {
    ssize_t n = RetryOnEintr([&] { return ::pwrite(fd, pid.data(), pid.size(), 0); });
    if (n < 0) write_error = errno;
    if (n >= 0 && static_cast<size_t>(n) != pid.size()) write_error = ENOSPC;
  }
  if (write_error != 0) {
    ::close(fd);
    return PosixError("write lock file", path, write_error);
  }
  return std::make_unique<PosixFileLock>(fd);
}

absl::StatusOr<bool> IsFileLockHeld(const std::string& path, std::string* holder_pid) {
  int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return PosixError("open lock file", path, errno);
  }
  bool held = false;
  if (RetryOnEintr([&] { return ::flock(fd, LOCK_SH | LOCK_NB); }) != 0) {
    int saved = errno;
    if (saved != EWOULDBLOCK) {
      ::close(fd);
      return PosixError("flock", path, saved);
    }
    held = true;
    *holder_pid = ReadLockHolder(fd);
  }
  // Closing drops the shared lock, if it was taken.
  ::close(fd);
  return held;
}

FileSystem* DefaultFileSystem() {
  static FileSystem* const fs = new PosixFileSystem();
  return fs;
}

}  // namespace kole::storage

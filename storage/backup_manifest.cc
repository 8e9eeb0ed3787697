#include "storage/backup_manifest.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ctime>

namespace kole::storage {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Key(JsonWriter& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void String(JsonWriter& w, std::string_view key, std::string_view value) {
  Key(w, key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void Uint(JsonWriter& w, std::string_view key, uint64_t value) {
  Key(w, key);
  w.Uint64(value);
}

// Readers of the fields a manifest must have; each returns false when the
// field is missing or of the wrong type.
bool GetString(const rapidjson::Value& object, const char* key, std::string* out) {
  auto it = object.FindMember(key);
  if (it == object.MemberEnd() || !it->value.IsString()) return false;
  out->assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

bool GetUint(const rapidjson::Value& object, const char* key, uint64_t* out) {
  auto it = object.FindMember(key);
  if (it == object.MemberEnd() || !it->value.IsUint64()) return false;
  *out = it->value.GetUint64();
  return true;
}

const rapidjson::Value* GetObject(const rapidjson::Value& object, const char* key) {
  auto it = object.FindMember(key);
  return it != object.MemberEnd() && it->value.IsObject() ? &it->value : nullptr;
}

// A manifest path must name a file inside the backup: relative, no empty,
// "." or ".." components. Restore joins it to the target directory.
bool SafeRelativePath(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view part =
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

bool IsHexDigest(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == text.npos;
}

}  // namespace

uint64_t BackupManifest::total_bytes() const {
  uint64_t total = 0;
  for (const BackupFile& file : files) total += file.bytes;
  return total;
}

std::string EncodeBackupManifest(const BackupManifest& m) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  String(w, "kind", "KoleBackup");
  Key(w, "formatVersion");
  w.Int(kBackupFormatVersion);
  String(w, "createdAt", m.created_at);
  String(w, "sourceDataDir", m.source_data_dir);
  Key(w, "sourceInUse");
  w.Bool(m.source_in_use);
  Key(w, "seconds");
  w.Double(m.seconds);

  Key(w, "nodes");
  w.StartObject();
  Uint(w, "count", m.nodes);
  Uint(w, "resourceVersion", m.node_resource_version);
  Uint(w, "tombstones", m.tombstones);
  String(w, "snapshot", m.snapshot);
  Uint(w, "logSegments", m.log_segments);
  Uint(w, "tornTailBytes", m.torn_tail_bytes);
  w.EndObject();

  Key(w, "pods");
  w.StartObject();
  Uint(w, "count", m.pods);
  Uint(w, "resourceVersion", m.pod_resource_version);
  w.EndObject();

  Uint(w, "totalBytes", m.total_bytes());
  Key(w, "files");
  w.StartArray();
  for (const BackupFile& file : m.files) {
    w.StartObject();
    String(w, "path", file.path);
    Uint(w, "bytes", file.bytes);
    String(w, "sha256", file.sha256);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

absl::StatusOr<BackupManifest> DecodeBackupManifest(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError("the backup manifest is not a JSON object");
  }
  std::string kind;
  if (!GetString(doc, "kind", &kind) || kind != "KoleBackup") {
    return absl::InvalidArgumentError("the backup manifest's kind is not KoleBackup");
  }
  auto version = doc.FindMember("formatVersion");
  if (version == doc.MemberEnd() || !version->value.IsInt()) {
    return absl::InvalidArgumentError("the backup manifest has no formatVersion");
  }
  if (version->value.GetInt() != kBackupFormatVersion) {
    return absl::FailedPreconditionError(
        fmt::format("the backup has format {}; this kole-admin reads format {}",
                    version->value.GetInt(), kBackupFormatVersion));
  }

  BackupManifest m;
  const rapidjson::Value* nodes = GetObject(doc, "nodes");
  const rapidjson::Value* pods = GetObject(doc, "pods");
  auto files = doc.FindMember("files");
  bool ok =
      GetString(doc, "createdAt", &m.created_at) &&
      GetString(doc, "sourceDataDir", &m.source_data_dir) && nodes != nullptr && pods != nullptr &&
      files != doc.MemberEnd() && files->value.IsArray() && GetUint(*nodes, "count", &m.nodes) &&
      GetUint(*nodes, "resourceVersion", &m.node_resource_version) &&
      GetUint(*nodes, "tombstones", &m.tombstones) && GetString(*nodes, "snapshot", &m.snapshot) &&
      GetUint(*nodes, "logSegments", &m.log_segments) &&
      GetUint(*nodes, "tornTailBytes", &m.torn_tail_bytes) && GetUint(*pods, "count", &m.pods) &&
      GetUint(*pods, "resourceVersion", &m.pod_resource_version);
  if (!ok) return absl::InvalidArgumentError("the backup manifest lacks required fields");
  if (auto in_use = doc.FindMember("sourceInUse");
      in_use != doc.MemberEnd() && in_use->value.IsBool()) {
    m.source_in_use = in_use->value.GetBool();
  }
  if (auto seconds = doc.FindMember("seconds");
      seconds != doc.MemberEnd() && seconds->value.IsNumber()) {
    m.seconds = seconds->value.GetDouble();
  }

  for (const rapidjson::Value& entry : files->value.GetArray()) {
    BackupFile file;
    if (!entry.IsObject() || !GetString(entry, "path", &file.path) ||
        !GetUint(entry, "bytes", &file.bytes) || !GetString(entry, "sha256", &file.sha256)) {
      return absl::InvalidArgumentError("a file entry of the backup manifest is malformed");
    }
    if (!SafeRelativePath(file.path)) {
      return absl::InvalidArgumentError(
          fmt::format("the backup manifest names the file {:?}, which is not a plain relative "
                      "path inside the backup",
                      file.path));
    }
    if (!IsHexDigest(file.sha256)) {
      return absl::InvalidArgumentError(
          fmt::format("the backup manifest's checksum of {} is not a SHA-256", file.path));
    }
    m.files.push_back(std::move(file));
  }
  return m;
}

std::string EncodeBackupChecksums(const BackupManifest& manifest) {
  std::string out;
  for (const BackupFile& file : manifest.files) {
    out += fmt::format("{}  {}\n", file.sha256, file.path);
  }
  return out;
}

struct Sha256::Context {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  context_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(context_->md, EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_->md); }

void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(context_->md, data.data(), data.size());
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_->md, digest, &length);
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

absl::StatusOr<std::string> FileSha256(FileSystem* fs, const std::string& path, uint64_t* bytes) {
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = fs->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  Sha256 sha;
  std::string chunk;
  *bytes = 0;
  constexpr size_t kChunk = 1 << 20;
  do {
    if (absl::Status s = (*file)->Read(kChunk, &chunk); !s.ok()) return s;
    sha.Update(chunk);
    *bytes += chunk.size();
  } while (chunk.size() == kChunk);
  return sha.HexDigest();
}

std::string UtcNowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace kole::storage

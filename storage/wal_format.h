#pragma once

// On-disk format of the write-ahead log, shared by WalWriter and WalReader.
//
// The log is a directory of segment files. A segment is named
//
//   wal-<first sequence, 20 decimal digits, zero-padded>.log
//
// so that names sort in log order, and holds a fixed header followed by
// records. All integers are little-endian.
//
//   header (24 bytes):
//     magic           8 bytes  "KOLE-WAL"
//     format version  u32      kWalFormatVersion
//     first sequence  u64      sequence of the first record; equals the name
//     header crc      u32      crc32 of the 20 bytes above
//
//   record (9-byte frame + payload):
//     length          u32      payload length in bytes
//     crc             u32      crc32 of the type byte followed by the payload
//     type            u8       caller-defined, 1..255 (0 is never valid, so a
//                              zero-filled tail cannot pass for a record)
//     payload         length bytes
//
// Sequence numbers are not stored per record: the i-th record (from 0) of a
// segment has sequence first_sequence + i, and a segment's first sequence
// equals the previous segment's first sequence plus its record count, so
// sequences are consecutive across segments. Sequence 0 means "none"; the
// first record ever written has sequence 1.
//
// Every checksum is zlib's crc32. The length is not covered by the record crc,
// but a wrong length makes the crc range wrong, so the record fails anyway.
//
// A segment ends where its last record ends; there is no padding or trailer.
// Only the newest segment is ever appended to; WalWriter syncs a segment
// completely before it creates the next one, so only the newest segment can
// have a torn tail after a crash.

#include <zlib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kole::storage {

inline constexpr std::string_view kWalMagic = "KOLE-WAL";
inline constexpr uint32_t kWalFormatVersion = 1;
inline constexpr size_t kWalHeaderSize = 24;
inline constexpr size_t kWalRecordFrameSize = 9;
// Larger payloads are refused by the writer and treated as corrupt by the
// reader, so a garbled length cannot make recovery allocate gigabytes.
inline constexpr uint32_t kWalMaxPayloadSize = 256u << 20;

inline constexpr std::string_view kWalFilePrefix = "wal-";
inline constexpr std::string_view kWalFileSuffix = ".log";

namespace wal_internal {

inline void PutFixed32(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

inline void PutFixed64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

// REQUIRES: `data` holds at least 4 (8) bytes.
inline uint32_t GetFixed32(const char* data) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}

inline uint64_t GetFixed64(const char* data) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}

inline uint32_t Crc32(uint32_t crc, std::string_view data) {
  // zlib takes a uInt length; payloads are capped well below 4 GiB.
  return static_cast<uint32_t>(
      ::crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

}  // namespace wal_internal

// The record checksum: crc32 of the type byte followed by the payload.
inline uint32_t WalRecordChecksum(uint8_t type, std::string_view payload) {
  char type_byte = static_cast<char>(type);
  return wal_internal::Crc32(wal_internal::Crc32(0, std::string_view(&type_byte, 1)), payload);
}

// Appends the 24-byte segment header to *out.
inline void EncodeWalHeader(uint64_t first_sequence, std::string* out) {
  size_t start = out->size();
  out->append(kWalMagic);
  wal_internal::PutFixed32(out, kWalFormatVersion);
  wal_internal::PutFixed64(out, first_sequence);
  wal_internal::PutFixed32(out, wal_internal::Crc32(0, std::string_view(*out).substr(start)));
}

// Appends one framed record to *out.
inline void EncodeWalRecord(uint8_t type, std::string_view payload, std::string* out) {
  wal_internal::PutFixed32(out, static_cast<uint32_t>(payload.size()));
  wal_internal::PutFixed32(out, WalRecordChecksum(type, payload));
  out->push_back(static_cast<char>(type));
  out->append(payload);
}

// Returns the first sequence of a valid header, or nullopt with *why set.
inline std::optional<uint64_t> DecodeWalHeader(std::string_view header, std::string* why) {
  if (header.size() < kWalHeaderSize) {
    *why = "segment header is incomplete";
    return std::nullopt;
  }
  if (header.substr(0, kWalMagic.size()) != kWalMagic) {
    *why = "segment header has a bad magic number";
    return std::nullopt;
  }
  uint32_t stored_crc = wal_internal::GetFixed32(header.data() + 20);
  if (stored_crc != wal_internal::Crc32(0, header.substr(0, 20))) {
    *why = "segment header checksum mismatch";
    return std::nullopt;
  }
  uint32_t version = wal_internal::GetFixed32(header.data() + 8);
  if (version != kWalFormatVersion) {
    *why = "segment format version " + std::to_string(version) + " is not supported (expected " +
           std::to_string(kWalFormatVersion) + ")";
    return std::nullopt;
  }
  return wal_internal::GetFixed64(header.data() + 12);
}

// "wal-00000000000000000042.log" for first sequence 42.
inline std::string WalSegmentFileName(uint64_t first_sequence) {
  std::string digits = std::to_string(first_sequence);
  return std::string(kWalFilePrefix) + std::string(20 - digits.size(), '0') + digits +
         std::string(kWalFileSuffix);
}

// The first sequence encoded in a segment file name, or nullopt if `name` is
// not exactly a segment name.
inline std::optional<uint64_t> ParseWalSegmentFileName(std::string_view name) {
  if (name.size() != kWalFilePrefix.size() + 20 + kWalFileSuffix.size() ||
      name.substr(0, kWalFilePrefix.size()) != kWalFilePrefix ||
      name.substr(name.size() - kWalFileSuffix.size()) != kWalFileSuffix) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : name.substr(kWalFilePrefix.size(), 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace kole::storage

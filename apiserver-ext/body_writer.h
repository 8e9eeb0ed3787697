#pragma once

// Buffers a streamed response body into chunks of a useful size and, when
// the client accepts gzip, compresses each chunk as an independent gzip
// member with libdeflate. HTTP clients (Go's gzip reader included) read
// concatenated members as one stream, so a million-node list is compressed
// in pieces without holding the whole body, and each piece is compressed by
// libdeflate's fast whole-buffer path.
//
// Thread safety: one writer per response, used by one thread.
// Ownership: borrows the sink, which must outlive it.

#include <cstddef>
#include <string>
#include <string_view>

#include "apiserver-ext/http_types.h"

struct libdeflate_compressor;

namespace kole::apiserver {

class BodyWriter {
 public:
  BodyWriter(ChunkSink* sink, bool gzip, size_t flush_bytes = 256 << 10);
  ~BodyWriter();
  BodyWriter(const BodyWriter&) = delete;
  BodyWriter& operator=(const BodyWriter&) = delete;

  // The buffer to append to; call MaybeFlush() after each item.
  std::string& buffer() { return buffer_; }
  // Sends the buffer once it holds flush_bytes. False once the sink failed.
  bool MaybeFlush() { return buffer_.size() < flush_bytes_ ? ok_ : Flush(); }
  // Sends whatever is buffered (a watch event, the end of a list).
  bool Flush();
  bool ok() const { return ok_; }

 private:
  ChunkSink* sink_;
  bool gzip_;
  size_t flush_bytes_;
  bool ok_ = true;
  std::string buffer_;
  std::string compressed_;
  libdeflate_compressor* compressor_ = nullptr;
};

// Gzip of a whole body (one member), for responses that are not streamed.
std::string GzipWhole(std::string_view data);

// Whether an Accept-Encoding header admits gzip.
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace kole::apiserver

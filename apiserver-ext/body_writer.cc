#include "apiserver-ext/body_writer.h"

#include <libdeflate.h>

namespace kole::apiserver {
namespace {

// Level 1: lists are large and served while the store keeps working; the
// ratio at level 1 is already good on repetitive node JSON.
constexpr int kLevel = 1;

void Compress(libdeflate_compressor* c, std::string_view in, std::string& out) {
  out.resize(libdeflate_gzip_compress_bound(c, in.size()));
  size_t n = libdeflate_gzip_compress(c, in.data(), in.size(), out.data(), out.size());
  out.resize(n);
}

}  // namespace

BodyWriter::BodyWriter(ChunkSink* sink, bool gzip, size_t flush_bytes)
    : sink_(sink), gzip_(gzip), flush_bytes_(flush_bytes) {
  buffer_.reserve(flush_bytes + (flush_bytes >> 2));
  if (gzip_) compressor_ = libdeflate_alloc_compressor(kLevel);
}

BodyWriter::~BodyWriter() {
  if (compressor_ != nullptr) libdeflate_free_compressor(compressor_);
}

bool BodyWriter::Flush() {
  if (!ok_) return false;
  if (buffer_.empty()) return true;
  if (gzip_) {
    Compress(compressor_, buffer_, compressed_);
    ok_ = sink_->Write(compressed_);
  } else {
    ok_ = sink_->Write(buffer_);
  }
  buffer_.clear();
  return ok_;
}

std::string GzipWhole(std::string_view data) {
  libdeflate_compressor* c = libdeflate_alloc_compressor(kLevel);
  std::string out;
  Compress(c, data, out);
  libdeflate_free_compressor(c);
  return out;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  // A comma-separated list of codings with optional ";q=" weights.
  size_t pos = 0;
  while (pos <= accept_encoding.size()) {
    size_t comma = accept_encoding.find(',', pos);
    std::string_view item = accept_encoding.substr(
        pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    size_t semi = item.find(';');
    std::string_view token = item.substr(0, semi);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    std::string_view params = semi == std::string_view::npos ? "" : item.substr(semi + 1);
    bool zero = params.find("q=0") != std::string_view::npos &&
                params.find("q=0.") == std::string_view::npos;
    if ((token == "gzip" || token == "*") && !zero) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

}  // namespace kole::apiserver

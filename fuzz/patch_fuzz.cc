// Fuzzes JSON merge patch and JSON patch application. Input: a target
// document and a patch separated by the first '\n'. Properties: applying
// never crashes, and whatever it leaves behind is valid JSON (a malformed
// patch is an error, never a damaged document); a merge patch applied twice
// gives the same result as once (RFC 7386 patches are idempotent).

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "fuzz/fuzz_support.h"

namespace {

void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  kole::fuzz::Abort("patch_fuzz", what, input, detail);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace kole::apiserver;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  rapidjson::Document target, patch;
  if (!ParseJson(input.substr(0, nl), target).ok()) return 0;
  if (!ParseJson(input.substr(nl + 1), patch).ok()) return 0;

  if (patch.IsArray()) {
    rapidjson::Document doc;
    doc.CopyFrom(target, doc.GetAllocator());
    ApplyJsonPatch(doc, patch).IgnoreError();
    std::string out = JsonToString(doc);
    rapidjson::Document check;
    if (!ParseJson(out, check).ok()) Fail("JSON patch left invalid JSON", input, out);
  }

  rapidjson::Document once;
  once.CopyFrom(target, once.GetAllocator());
  ApplyMergePatch(once, patch, once.GetAllocator());
  std::string first = JsonToString(once);
  ApplyMergePatch(once, patch, once.GetAllocator());
  std::string second = JsonToString(once);
  if (first != second) Fail("merge patch is not idempotent", input, first + " vs " + second);
  return 0;
}

// Fuzzes the request-body parsers every create, update and patch runs:
// JSON parsing, Node and Pod decoding and validation, and DeleteOptions.
// Properties: decoding fails only with 400; a node that decodes without
// validation problems renders to JSON that parses back to the same
// user-owned fields (what the store keeps), so a GET returns what a PUT set.

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/node_json.h"
#include "apiserver-ext/pod_json.h"
#include "apiserver-ext/resource_common.h"
#include "fuzz/fuzz_support.h"

namespace {

void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  kole::fuzz::Abort("json_body_fuzz", what, input, detail);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace kole::apiserver;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  rapidjson::Document doc;
  if (!ParseJson(input, doc).ok()) return 0;

  ParsedNode node;
  ApiError error;
  std::vector<StatusCause> causes;
  if (!ParseNode(doc, &node, &error, &causes)) {
    if (error.code != 400)
      Fail("node decoding failed with a code other than 400", input, error.message);
  } else if (causes.empty()) {
    std::string rendered;
    AppendNodeJson(node.node, rendered);
    rapidjson::Document again;
    if (!ParseJson(rendered, again).ok()) Fail("rendered node is not JSON", input, rendered);
    ParsedNode back;
    std::vector<StatusCause> back_causes;
    if (!ParseNode(again, &back, &error, &back_causes)) {
      Fail("rendered node does not decode", input, rendered);
    }
    const kole::storage::Node& a = node.node;
    const kole::storage::Node& b = back.node;
    if (a.name != b.name || a.labels != b.labels || a.annotations != b.annotations ||
        a.taints != b.taints || a.unschedulable != b.unschedulable) {
      Fail("node user fields do not survive rendering", input, rendered);
    }
  }

  ParsedPod pod;
  if (!ParsePod(doc, &pod, &error, &causes) && error.code != 400) {
    Fail("pod decoding failed with a code other than 400", input, error.message);
  }

  HttpRequest request;
  request.body = std::string(input);
  DeleteOptions options;
  if (!ParseDeleteOptions(request, &options, &error) && error.code != 400) {
    Fail("DeleteOptions rejected with a code other than 400", input, error.message);
  }
  return 0;
}

// Fuzzes the continue token of a paginated list (?continue=), which clients
// send back to NodeStore::List verbatim and may have tampered with. The store
// is a real in-memory one with a small history (updates and deletes after the
// registrations, part of it already trimmed), so a token can name a current,
// a past or an expired version, a retired slot or a name that no longer
// exists.
//
// Input: one byte of options, then the token. Bit 0 wraps the token as the
// store does ("kole1:" + base64url), so that the fuzzer works on the
// "rv:slot:name" inside rather than on base64; bits 1-3 are the page limit;
// bit 4 adds the field selector metadata.name=edge-05, bit 5 the label
// selector tier=edge, bit 6 asks for resourceVersion 15 as well.
//
// Properties: List returns a page or InvalidArgument/OutOfRange, never
// anything else; a page is in name order and within its limit; following the
// continue tokens the store hands out always works, ends, keeps the page's
// resourceVersion and yields exactly the nodes a single unpaginated list from
// the same token yields.

#include <absl/strings/escaping.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "fuzz/fuzz_support.h"
#include "storage/clock.h"
#include "storage/node_store.h"

namespace kole::storage {
namespace {

constexpr int kNodes = 12;

[[noreturn]] void Fail(std::string_view what, std::string_view token, std::string_view detail) {
  fuzz::Abort("continue_token_fuzz", what, token, detail);
}

std::string NodeName(int i) {
  std::string name = "edge-00";
  name[5] = static_cast<char>('0' + i / 10);
  name[6] = static_cast<char>('0' + i % 10);
  return name;
}

Node DeviceNode(int i) {
  Node node;
  node.name = NodeName(i);
  node.labels = {{"kubernetes.io/hostname", node.name}, {"tier", i % 3 == 0 ? "core" : "edge"}};
  node.capacity = {{"cpu", "4"}};
  node.addresses = {{"InternalIP", "10.0.0." + std::to_string(i + 1)}};
  node.node_info.machine_id = "0123456789abcdef0123456789abcd" + NodeName(i).substr(5);
  NormalizePairs(node.labels);
  return node;
}

void MustOk(const absl::Status& status, std::string_view step) {
  if (!status.ok()) Fail("building the store failed", step, status.ToString());
}

// Built once: List does not change the store, so every input sees the same
// one. Versions 1..12 register, 13 deletes; the change log then forgets them
// (so older tokens have expired); 14..17 relabel and 18 deletes again.
NodeStore& Store() {
  static NodeStore* store = [] {
    static ManualClock clock;
    StoreOptions options;
    options.clock = &clock;
    options.background_maintenance = false;
    options.change_log.retention_seconds = 60;
    absl::StatusOr<std::unique_ptr<NodeStore>> opened = NodeStore::Open(options);
    MustOk(opened.status(), "open");
    NodeStore* s = opened->release();
    for (int i = 0; i < kNodes; ++i) MustOk(s->Register(DeviceNode(i)).status(), "register");
    MustOk(s->Delete(NodeName(2), 0, /*tombstone=*/false).status(), "delete");
    clock.Advance(120);
    MustOk(s->Maintain(), "trim the change log");
    for (int i : {1, 4, 5, 9}) {
      Node node = DeviceNode(i);
      node.labels.emplace_back("kole.io/rollout", "wave-" + std::to_string(i % 2));
      NormalizePairs(node.labels);
      absl::StatusOr<Node> updated = s->UpdateSpec(node, 0);
      MustOk(updated.status(), "update");
    }
    MustOk(s->Delete(NodeName(5), 0, /*tombstone=*/false).status(), "delete");
    if (s->resource_version() != 18) Fail("the store has another history", "", "");
    return s;
  }();
  return *store;
}

std::string Names(const std::vector<Node>& nodes) {
  std::string out;
  for (const Node& node : nodes) out += node.name + " ";
  return out;
}

void CheckList(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  ListOptions options;
  options.limit = (flags >> 1) & 7;
  if (flags & 1) {
    options.continue_token =
        "kole1:" + absl::WebSafeBase64Escape(absl::string_view(rest.data(), rest.size()));
  } else {
    options.continue_token = std::string(rest);
  }
  if (flags & 16) options.field_selector = *FieldSelector::Parse("metadata.name=edge-05");
  if (flags & 32) options.label_selector = *LabelSelector::Parse("tier=edge");
  if (flags & 64) options.resource_version = 15;
  const std::string& token = options.continue_token;

  NodeStore& store = Store();
  absl::StatusOr<ListResult> first = store.List(options);
  if (!first.ok()) {
    if (!absl::IsInvalidArgument(first.status()) && !absl::IsOutOfRange(first.status())) {
      Fail("List failed with an unexpected code", token, first.status().ToString());
    }
    return;
  }

  // The same list in one piece, to compare the pages with.
  ListOptions whole_options = options;
  whole_options.limit = 0;
  absl::StatusOr<ListResult> whole = store.List(whole_options);
  if (!whole.ok()) Fail("an unpaginated list from the same token fails", token, "");
  if (!whole->continue_token.empty()) Fail("an unpaginated list has a continue token", token, "");

  std::vector<Node> pages;
  ListResult page = *std::move(first);
  for (int n = 0;; ++n) {
    if (options.limit != 0 && page.nodes.size() > options.limit) {
      Fail("a page exceeds its limit", token, Names(page.nodes));
    }
    if (page.resource_version != whole->resource_version) {
      Fail("pages disagree on the resourceVersion", token, "");
    }
    for (Node& node : page.nodes) {
      if (!pages.empty() && !(pages.back().name < node.name)) {
        Fail("pages are not in name order", token, Names(pages) + "| " + node.name);
      }
      if (!options.label_selector.Matches(node.labels)) {
        Fail("a node fails the label selector", token, node.name);
      }
      pages.push_back(std::move(node));
    }
    if (page.continue_token.empty()) break;
    if (n > kNodes + 1) Fail("pagination does not end", token, page.continue_token);

    ListOptions next = options;
    next.continue_token = page.continue_token;
    absl::StatusOr<ListResult> more = store.List(next);
    if (!more.ok()) {
      Fail("a token the store issued is refused", token,
           page.continue_token + ": " + more.status().ToString());
    }
    page = *std::move(more);
  }
  if (pages != whole->nodes) {
    Fail("pages differ from the unpaginated list", token,
         Names(pages) + "vs " + Names(whole->nodes));
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kole::fuzz::MuteLogs();
  kole::storage::Store();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckList(data, size);
  return 0;
}

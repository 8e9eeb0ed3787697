#pragma once

// Server-side apply (SSA, `PATCH` with application/apply-patch+yaml) and the
// field ownership record behind it, metadata.managedFields, for one resource
// version of our edge.kole.io kinds. It follows the rules kube-apiserver takes
// from structured-merge-diff, without an OpenAPI schema.
//
// What it promises:
//  - Ownership is kept in the upstream wire form: a JSON array of
//    metav1.ManagedFieldsEntry, one entry per (manager, operation,
//    subresource), fieldsType "FieldsV1", empty entries dropped, entries that
//    were not touched left as they were (order and time included).
//  - An apply owns every scalar, null, empty object, atomic list and
//    associative-list item its configuration names, and nothing for
//    apiVersion, kind, status and the metadata fields the server sets
//    (name, namespace, uid, resourceVersion, generation, creationTimestamp,
//    selfLink, managedFields).
//  - Merge: objects merge member by member, associative lists item by item
//    by key, everything else (scalars, atomic lists) is replaced. `null` in a
//    configuration removes the field and the applier owns it as unset.
//  - A field the applier owned last time and now leaves out is removed from
//    the object, unless any manager (this apply included) still owns it or
//    something below it; objects and lists emptied that way go too.
//  - A field that changes, appears or disappears and is owned by a manager
//    other than this applier's Apply entry is a conflict; with `force` it
//    moves to the applier instead. Applying the value a field already has
//    shares its ownership and never conflicts.
//  - Applying to an object that has no managedFields first records all its
//    fields as owned by "before-first-apply" (operation Update), as upstream
//    does, so an apply cannot silently overwrite values set before SSA was
//    in use.
//  - A no-op apply (same configuration again) returns the object unchanged,
//    `changed` false and byte-identical managedFields.
//  - Malformed managedFields (not JSON, not an array, entries without
//    manager/operation/fieldsV1) are dropped rather than failing the
//    request, as upstream resets what it cannot decode.
//
// Limits (things upstream does that this does not):
//  - No schema: every JSON object is a struct whose named fields are owned
//    one by one, so a map value is never owned as a whole; lists are atomic
//    except those in the associative-list table at the top of
//    server_side_apply.cc (pod template containers, initContainers, their
//    env, ports and volumeMounts, and volumes). Sets ("v:" elements) and
//    granular unkeyed lists ("i:") are never produced. Adding a keyed list
//    is one row in that table.
//  - One API version, no conversion; entries recorded under another
//    apiVersion are compared as if they were ours.
//  - No defaulting except the implied "TCP" protocol in container port keys,
//    and no validation of the merged object: the caller validates it as it
//    would a create or update.
//  - Items merged into an existing associative list keep the live order;
//    new items are appended in configuration order.
//  - A stored associative list whose items lack or repeat keys is treated
//    as atomic (upstream refuses to touch such an object).
//  - Update entries are not capped (upstream folds managers past ten into
//    "ancient-changes").
//
// Thread safety: pure functions over the caller's values. Cost: linear in the
// size of the object and its managedFields, times the (small) number of
// managers.

#include <absl/status/statusor.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kole::apiserver {

// Upstream refuses longer fieldManager values.
inline constexpr size_t kMaxFieldManagerLength = 128;

// The manager that owns every field of an object applied to for the first
// time while it had no managedFields.
inline constexpr std::string_view kBeforeFirstApplyManager = "before-first-apply";

// One field that an apply would change while another manager owns it.
struct ApplyConflict {
  std::string manager;      // the owner's fieldManager, e.g. "kubectl-edit"
  std::string operation;    // the owner's entry: "Apply" or "Update"
  std::string api_version;  // the owner's entry apiVersion
  // The field in structured-merge-diff notation, e.g.
  // .spec.template.spec.containers[name="app"].image; an associative-list
  // item on its own reads .spec.template.spec.volumes[name="data"].
  std::string field;
};

struct ApplyOutcome {
  // The merged object, without metadata.managedFields; the live object's
  // other server-set fields (uid, resourceVersion, status, ...) are kept as
  // they were. When conflicts stop the apply: the live object unchanged (an
  // empty object if there was none).
  rapidjson::Document object;
  // Compact JSON array of metav1.ManagedFieldsEntry to store with the
  // object ("[]" when nobody owns anything). When conflicts stop the apply:
  // the input, unchanged.
  std::string managed_fields_json;
  // Non-empty means nothing was applied: answer 409 (see
  // ApplyConflictMessage). Always empty when `force` was set.
  std::vector<ApplyConflict> conflicts;
  // False when `object` equals the live object (minus managedFields): the
  // caller may skip the write.
  bool changed = false;
};

// Applies `config` (the decoded apply patch: apiVersion, kind, metadata.name
// and the fields the manager has an opinion on) to `live`, the current object
// or nullptr when it does not exist yet (the apply creates it; the caller
// fills uid, creationTimestamp, ...). `managed_fields_json` is the live
// object's managedFields array ("" for none); a managedFields inside `live`
// is ignored. `manager` is the request's fieldManager; `force` takes fields
// from other managers instead of reporting conflicts. `api_version` is
// recorded in the applier's entry and `now` (Unix seconds) becomes its time
// when anything changed.
//
// Returns InvalidArgument, naming the field, when `config` is not an object
// or nests deeper than kMaxJsonDepth, `manager` is empty or longer than
// kMaxFieldManagerLength, an associative-list item lacks its key or a key
// repeats; Internal when `live` is not an object. Conflicts are not errors:
// they come back in the outcome.
absl::StatusOr<ApplyOutcome> ServerSideApply(const rapidjson::Value* live,
                                             std::string_view managed_fields_json,
                                             const rapidjson::Value& config,
                                             std::string_view manager, bool force,
                                             std::string_view api_version, int64_t now);

// Records a write that is not an apply (create, update or patch, operation
// "Update") by `manager` and returns the new managedFields array: every field
// that changed or appeared between `before` (nullptr on create) and `after`
// becomes owned by `manager`'s Update entry and leaves every other entry
// (this manager's Apply entry included); fields that disappeared leave every
// entry. Nothing changed: the entries come back as they were.
//
// REQUIRES: `manager` non-empty (upstream derives it from the User-Agent when
// the request names none; an empty one is recorded as "unknown"); `after` is
// an object (otherwise the input comes back unchanged).
// `managed_fields_json` is what the object had before the write, or what the
// client sent in the new object when the caller honours that.
std::string RecordUpdate(const rapidjson::Value* before, const rapidjson::Value& after,
                         std::string_view managed_fields_json, std::string_view manager,
                         std::string_view api_version, int64_t now);

// The upstream 409 message for `conflicts` (non-empty), e.g.
//   Apply failed with 1 conflict: conflict with "kubectl-edit" using
//   edge.kole.io/v1alpha1: .spec.updateStrategy.type
// and, for several, one "conflicts with ...:" block per manager with one
// "- <field>" line per field.
std::string ApplyConflictMessage(const std::vector<ApplyConflict>& conflicts);

// The message of one metav1.StatusCause (reason "FieldManagerConflict",
// field = conflict.field): `conflict with "m"`, plus ` using <apiVersion>`
// when the owner's entry is an Update.
std::string ApplyConflictCauseMessage(const ApplyConflict& conflict);

}  // namespace kole::apiserver

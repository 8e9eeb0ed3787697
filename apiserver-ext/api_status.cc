#include "apiserver-ext/api_status.h"

#include <fmt/format.h>

#include "apiserver-ext/json_util.h"
#include "storage/node_store.h"

namespace kole::apiserver {
namespace {

constexpr std::string_view kGroup = "edge.kole.io";

ApiError Make(int code, std::string reason, std::string message) {
  ApiError e;
  e.code = code;
  e.reason = std::move(reason);
  e.message = std::move(message);
  return e;
}

std::string Qualified(const ErrorSubject& s) { return fmt::format("{}.{}", s.resource, kGroup); }

void Details(ApiError& e, const ErrorSubject& s) {
  e.name = s.name;
  e.group = std::string(kGroup);
  e.kind = s.resource;
}

}  // namespace

ApiError BadRequest(std::string message) { return Make(400, "BadRequest", std::move(message)); }

ApiError NotFound(const ErrorSubject& s) {
  ApiError e = Make(404, "NotFound",
                    s.name.empty() ? "the server could not find the requested resource"
                                   : fmt::format("{} \"{}\" not found", Qualified(s), s.name));
  if (!s.resource.empty()) Details(e, s);
  return e;
}

ApiError NotAcceptable() {
  return Make(406, "NotAcceptable",
              "the server was unable to respond with a content type that the client supports");
}

ApiError UnsupportedMediaType(std::string_view content_type, std::string_view accepted) {
  return Make(415, "UnsupportedMediaType",
              fmt::format("the body of the request was in an unknown format ({}) - accepted media "
                          "types include: {}",
                          content_type, accepted));
}

ApiError MethodNotAllowed(std::string_view verb, std::string_view resource) {
  return Make(
      405, "MethodNotAllowed",
      fmt::format("{} is not supported on resources of kind \"{}.{}\"", verb, resource, kGroup));
}

ApiError Invalid(const ErrorSubject& s, std::vector<StatusCause> causes) {
  std::string list;
  for (const StatusCause& c : causes) {
    if (!list.empty()) list += ", ";
    list += c.field.empty() ? c.message : fmt::format("{}: {}", c.field, c.message);
  }
  if (causes.size() > 1) list = "[" + list + "]";
  ApiError e = Make(422, "Invalid",
                    fmt::format("{}.{} \"{}\" is invalid: {}", s.kind, kGroup, s.name, list));
  e.name = s.name;
  e.group = std::string(kGroup);
  e.kind = s.kind;
  e.causes = std::move(causes);
  return e;
}

ApiError Conflict(const ErrorSubject& s, std::string message) {
  ApiError e = Make(409, "Conflict", std::move(message));
  Details(e, s);
  return e;
}

ApiError Expired(std::string message) { return Make(410, "Expired", std::move(message)); }

ApiError TooManyRequests(std::string message, int retry_after_seconds) {
  ApiError e = Make(429, "TooManyRequests", std::move(message));
  e.retry_after_seconds = retry_after_seconds;
  return e;
}

ApiError Unauthorized() { return Make(401, "Unauthorized", "Unauthorized"); }

ApiError Forbidden(std::string message, const ErrorSubject& s) {
  ApiError e = Make(403, "Forbidden", std::move(message));
  if (!s.resource.empty()) Details(e, s);
  return e;
}

ApiError RequestEntityTooLarge(size_t limit) {
  return Make(413, "RequestEntityTooLarge",
              fmt::format("Request entity too large: limit is {}", limit));
}

ApiError InternalError(std::string_view what) {
  return Make(500, "InternalError", fmt::format("Internal error occurred: {}", what));
}

ApiError FromStatus(const absl::Status& status, const ErrorSubject& s) {
  std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return NotFound(s);
    case absl::StatusCode::kAlreadyExists: {
      ApiError e =
          Make(409, "AlreadyExists", fmt::format("{} \"{}\" already exists", Qualified(s), s.name));
      Details(e, s);
      return e;
    }
    case absl::StatusCode::kAborted:
      return Conflict(s, fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has "
                                     "been modified; please apply your changes to the latest "
                                     "version and try again",
                                     Qualified(s), s.name));
    case absl::StatusCode::kInvalidArgument:
      return Invalid(s, {{"FieldValueInvalid", message, ""}});
    case absl::StatusCode::kFailedPrecondition: {
      ApiError e = Conflict(s, message);
      return e;
    }
    case absl::StatusCode::kOutOfRange:
      return Expired(message);
    case absl::StatusCode::kResourceExhausted: {
      ApiError e = Make(507, "InternalError", fmt::format("Internal error occurred: {}", message));
      return e;
    }
    case absl::StatusCode::kUnavailable: {
      ApiError e = Make(503, "ServiceUnavailable", message);
      e.retry_after_seconds = 1;
      return e;
    }
    default:
      return InternalError(message);
  }
}

std::string StatusJson(const ApiError& e) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "Status");
  Field(w, "apiVersion", "v1");
  Key(w, "metadata");
  w.StartObject();
  if (!e.continue_token.empty()) Field(w, "continue", e.continue_token);
  w.EndObject();
  Field(w, "status", "Failure");
  Field(w, "message", e.message);
  Field(w, "reason", e.reason);
  bool details =
      !e.name.empty() || !e.kind.empty() || !e.causes.empty() || e.retry_after_seconds > 0;
  if (details) {
    Key(w, "details");
    w.StartObject();
    if (!e.name.empty()) Field(w, "name", e.name);
    if (!e.group.empty()) Field(w, "group", e.group);
    if (!e.kind.empty()) Field(w, "kind", e.kind);
    if (!e.uid.empty()) Field(w, "uid", e.uid);
    if (!e.causes.empty()) {
      Key(w, "causes");
      w.StartArray();
      for (const StatusCause& c : e.causes) {
        w.StartObject();
        Field(w, "reason", c.reason);
        Field(w, "message", c.message);
        if (!c.field.empty()) Field(w, "field", c.field);
        w.EndObject();
      }
      w.EndArray();
    }
    if (e.retry_after_seconds > 0) {
      Key(w, "retryAfterSeconds");
      w.Int(e.retry_after_seconds);
    }
    w.EndObject();
  }
  Key(w, "code");
  w.Int(e.code);
  w.EndObject();
  return out;
}

HttpResponse ErrorResponse(const ApiError& error) {
  HttpResponse r;
  r.status = error.code;
  r.body = StatusJson(error);
  if (error.retry_after_seconds > 0) {
    r.headers.emplace("Retry-After", std::to_string(error.retry_after_seconds));
  }
  return r;
}

std::string SuccessStatusJson(const ErrorSubject& s, std::string_view uid) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "Status");
  Field(w, "apiVersion", "v1");
  Key(w, "metadata");
  w.StartObject();
  w.EndObject();
  Field(w, "status", "Success");
  Key(w, "details");
  w.StartObject();
  Field(w, "name", s.name);
  Field(w, "group", kGroup);
  Field(w, "kind", s.resource);
  Field(w, "uid", uid);
  w.EndObject();
  w.EndObject();
  return out;
}

}  // namespace kole::apiserver

#pragma once

// Kubernetes metav1.Status errors: the one place where store and handler
// errors become HTTP status codes and reasons (STYLE.md, "Errors are
// values"). Clients act on `reason` (IsNotFound, IsConflict, ...), so every
// error the API returns is built here.
//
// Thread safety: value types and pure functions.

#include <absl/status/status.h>

#include <string>
#include <string_view>
#include <vector>

#include "apiserver-ext/http_types.h"

namespace kole::apiserver {

struct StatusCause {
  std::string reason;  // FieldValueInvalid, FieldValueRequired, ...
  std::string message;
  std::string field;
};

struct ApiError {
  int code = 500;
  std::string reason = "InternalError";
  std::string message;
  // details
  std::string name;
  std::string group;
  std::string kind;
  std::string uid;
  std::vector<StatusCause> causes;
  int retry_after_seconds = 0;
  std::string continue_token;  // metadata.continue of a 410 on a list.
};

// What a handler names when it reports an error about an object.
struct ErrorSubject {
  std::string resource;  // "nodes"
  std::string kind;      // "Node"
  std::string name;
};

ApiError BadRequest(std::string message);
ApiError NotFound(const ErrorSubject& subject);
ApiError NotAcceptable();
ApiError UnsupportedMediaType(std::string_view content_type, std::string_view accepted);
ApiError MethodNotAllowed(std::string_view verb, std::string_view resource);
ApiError Invalid(const ErrorSubject& subject, std::vector<StatusCause> causes);
ApiError Conflict(const ErrorSubject& subject, std::string message);
ApiError Expired(std::string message);
ApiError TooManyRequests(std::string message, int retry_after_seconds);
ApiError Unauthorized();
ApiError Forbidden(std::string message, const ErrorSubject& subject);
ApiError RequestEntityTooLarge(size_t limit);
ApiError InternalError(std::string_view what);

// Maps a store error to the API error clients expect, naming `subject`.
ApiError FromStatus(const absl::Status& status, const ErrorSubject& subject);

// The Status object as JSON.
std::string StatusJson(const ApiError& error);

// A response carrying `error` (with Retry-After when set).
HttpResponse ErrorResponse(const ApiError& error);

// {"kind":"Status",...,"status":"Success"} for deletes.
std::string SuccessStatusJson(const ErrorSubject& subject, std::string_view uid);

}  // namespace kole::apiserver

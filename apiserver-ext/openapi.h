#pragma once

// OpenAPI documents for edge.kole.io/v1alpha1 (k8s-api-contract.md §4):
// v3 root and group-version document, and a Swagger 2.0 document for
// /openapi/v2. Both carry full schemas so `kubectl explain` works, and the v3
// PATCH operation declares `fieldValidation`, which is what lets kubectl
// apply, create, replace and edit talk to the server directly
// (kubectl-wire.md §5). Strategic merge patch is not advertised: it is not
// implemented, and kubectl would use it if it were listed.
//
// Thread safety: const after construction.

#include <string>

#include "apiserver-ext/http_types.h"

namespace kole::apiserver {

class OpenApi {
 public:
  OpenApi();

  HttpResponse V2(const HttpRequest& request) const;
  HttpResponse V3Root(const HttpRequest& request) const;
  HttpResponse V3GroupVersion(const HttpRequest& request) const;

  const std::string& v3_document() const { return v3_; }
  const std::string& v2_document() const { return v2_; }
  const std::string& v3_hash() const { return v3_hash_; }

 private:
  std::string v2_;
  std::string v2_etag_;
  std::string v3_;
  std::string v3_hash_;
  std::string v3_root_;
};

}  // namespace kole::apiserver

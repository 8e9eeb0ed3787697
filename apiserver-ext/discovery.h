#pragma once

// Discovery documents (k8s-api-contract.md §3): legacy /api, /apis,
// /apis/edge.kole.io and /apis/edge.kole.io/v1alpha1, and aggregated
// discovery (apidiscovery.k8s.io/v2 and v2beta1) on /api and /apis with an
// ETag so the aggregator can revalidate with If-None-Match.
//
// The documents never change while the process runs; they are rendered once.
// Thread safety: const after construction.

#include <string>

#include "apiserver-ext/http_types.h"

namespace kole::apiserver {

class Discovery {
 public:
  Discovery();

  // GET /api or /apis with content negotiation; 406 when nothing fits,
  // 304 when If-None-Match names the current aggregated document.
  HttpResponse Api(const HttpRequest& request) const;
  HttpResponse Apis(const HttpRequest& request) const;
  HttpResponse Group() const;
  HttpResponse GroupVersion() const;

  const std::string& aggregated_v2() const { return aggregated_v2_; }

 private:
  HttpResponse Aggregated(const HttpRequest& request, const std::string& v2,
                          const std::string& v2beta1, const std::string& etag_v2,
                          const std::string& etag_v2beta1, bool v2_wanted) const;

  std::string group_list_;
  std::string group_;
  std::string resource_list_;
  std::string aggregated_v2_;
  std::string aggregated_v2beta1_;
  std::string empty_v2_;
  std::string empty_v2beta1_;
  std::string etag_v2_, etag_v2beta1_, etag_empty_v2_, etag_empty_v2beta1_;
};

// Uppercase hex SHA-512 of `data`, as upstream computes discovery ETags and
// OpenAPI hashes.
std::string Sha512Hex(std::string_view data);

}  // namespace kole::apiserver

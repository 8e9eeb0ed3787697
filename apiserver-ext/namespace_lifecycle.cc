#include "apiserver-ext/namespace_lifecycle.h"

#include <absl/container/flat_hash_map.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/clock.h>
#include <rapidjson/document.h>

#include <string>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/kube_client.h"
#include "common/log.h"
#include "storage/validation.h"

namespace kole::apiserver {
namespace {

struct Cache {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::pair<bool, absl::Time>> entries ABSL_GUARDED_BY(mu);
};

}  // namespace

NamespaceTerminatingFn NamespaceTerminatingChecker(std::shared_ptr<KubeClient> client,
                                                   absl::Duration cache_ttl) {
  auto cache = std::make_shared<Cache>();
  return [client, cache, cache_ttl](std::string_view ns) {
    if (client == nullptr || !storage::IsDns1123Label(ns).empty()) return false;
    absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&cache->mu);
      auto it = cache->entries.find(std::string(ns));
      if (it != cache->entries.end() && it->second.second > now) return it->second.first;
    }
    bool terminating = false;
    absl::StatusOr<std::string> body = client->Get("/api/v1/namespaces/" + std::string(ns));
    if (body.ok()) {
      rapidjson::Document doc;
      doc.Parse(body->data(), body->size());
      const rapidjson::Value* status = doc.IsObject() ? Member(doc, "status") : nullptr;
      const rapidjson::Value* phase = status ? Member(*status, "phase") : nullptr;
      terminating = phase != nullptr && phase->IsString() && AsView(*phase) == "Terminating";
    } else if (absl::IsNotFound(body.status())) {
      terminating = true;
    } else {
      KOLE_LOG_EVERY_N(Warning, 100, "Cannot read a namespace's phase; deleted pods restart",
                       "namespace", ns, "err", body.status());
      return false;
    }
    absl::MutexLock lock(&cache->mu);
    cache->entries[std::string(ns)] = {terminating, now + cache_ttl};
    return terminating;
  };
}

}  // namespace kole::apiserver

#include "apiserver-ext/options.h"

#include <absl/time/time.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "apiserver-ext/kube_client.h"
#include "apiserver-ext/namespace_lifecycle.h"
#include "common/log.h"

namespace kole::apiserver {
namespace {

absl::StatusOr<absl::Duration> Duration(const std::string& flag, const std::string& value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(fmt::format("--{}: invalid duration {:?}", flag, value));
  }
  return d;
}

std::string DefaultCertDir(const Options& o) {
  if (!o.cert_dir.empty()) return o.cert_dir;
  if (!o.data_dir.empty()) return o.data_dir + "/certificates";
  return "apiserver.local.config/certificates";
}

}  // namespace

void AddFlags(CLI::App& app, Options& o) {
  const std::string serving = "Secure serving";
  app.add_option("--secure-port", o.secure_port,
                 "The port on which to serve HTTPS (0: any free port)")
      ->group(serving)
      ->capture_default_str();
  app.add_option("--bind-address", o.bind_address, "The IP address on which to listen")
      ->group(serving)
      ->capture_default_str();
  app.add_option("--tls-cert-file", o.tls_cert_file,
                 "File with the serving certificate (and intermediates). Without it a "
                 "self-signed certificate is generated into --cert-dir")
      ->group(serving);
  app.add_option("--tls-private-key-file", o.tls_private_key_file,
                 "File with the private key of --tls-cert-file")
      ->group(serving);
  app.add_option("--cert-dir", o.cert_dir,
                 "Directory for generated certificates (default <data-dir>/certificates)")
      ->group(serving);
  app.add_option("--tls-san", o.tls_sans,
                 "Extra DNS names or IPs for a generated serving certificate (repeatable), "
                 "e.g. kole-apiserver.kole-system.svc")
      ->group(serving)
      ->delimiter(',');

  const std::string authn = "Authentication";
  app.add_option("--client-ca-file", o.client_ca_file,
                 "Accept client certificates signed by these CAs (user = CN, groups = O)")
      ->group(authn);
  app.add_option("--requestheader-client-ca-file", o.requestheader_client_ca_file,
                 "CA of the front proxy (kube-apiserver's proxy client certificate); requests "
                 "over connections with such a certificate carry the user in headers")
      ->group(authn);
  app.add_option("--requestheader-allowed-names", o.requestheader_allowed_names,
                 "Common names the front proxy's certificate may have (empty: any)")
      ->group(authn)
      ->delimiter(',');
  app.add_option("--requestheader-username-headers", o.requestheader_username_headers,
                 "Headers carrying the user name")
      ->group(authn)
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--requestheader-group-headers", o.requestheader_group_headers,
                 "Headers carrying the groups")
      ->group(authn)
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--requestheader-extra-headers-prefix", o.requestheader_extra_headers_prefix,
                 "Header prefixes carrying user extras")
      ->group(authn)
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--authentication-kubeconfig", o.authentication_kubeconfig,
                 "kubeconfig for TokenReviews and for reading the "
                 "kube-system/extension-apiserver-authentication ConfigMap")
      ->group(authn);
  app.add_option("--authentication-token-webhook-cache-ttl",
                 o.authentication_token_webhook_cache_ttl, "How long token reviews are cached")
      ->group(authn)
      ->capture_default_str();

  const std::string authz = "Authorization";
  app.add_option("--authorization-kubeconfig", o.authorization_kubeconfig,
                 "kubeconfig for SubjectAccessReviews")
      ->group(authz);
  app.add_option("--authorization-always-allow-paths", o.authorization_always_allow_paths,
                 "Paths that skip authorization (a trailing * matches a prefix)")
      ->group(authz)
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--authorization-webhook-cache-authorized-ttl",
                 o.authorization_webhook_cache_authorized_ttl, "How long allow answers are cached")
      ->group(authz)
      ->capture_default_str();
  app.add_option("--authorization-webhook-cache-unauthorized-ttl",
                 o.authorization_webhook_cache_unauthorized_ttl, "How long deny answers are cached")
      ->group(authz)
      ->capture_default_str();
  app.add_option("--kubeconfig", o.kubeconfig,
                 "kubeconfig for both of the above when they are not given")
      ->group(authz);
  app.add_flag("--standalone", o.standalone,
               "Run without kube-apiserver: generate a CA and an admin client certificate in "
               "--cert-dir, authenticate client certificates from that CA and ALLOW EVERY "
               "authenticated user everything")
      ->group(authz);

  const std::string limits = "Limits";
  app.add_option("--max-requests-inflight", o.max_requests_inflight,
                 "Read-only requests served at once; more get 429")
      ->group(limits)
      ->capture_default_str();
  app.add_option("--max-mutating-requests-inflight", o.max_mutating_requests_inflight,
                 "Mutating requests served at once; more get 429")
      ->group(limits)
      ->capture_default_str();
  app.add_option("--worker-threads", o.worker_threads,
                 "Threads serving connections (each open connection holds one)")
      ->group(limits)
      ->capture_default_str();
  app.add_option("--max-watches", o.max_watches,
                 "Open watches at most; must be below --worker-threads")
      ->group(limits)
      ->capture_default_str();
  app.add_option("--max-request-body-bytes", o.max_request_body_bytes,
                 "Larger request bodies get 413")
      ->group(limits)
      ->capture_default_str();

  const std::string logging = "Logging";
  app.add_option("-v,--v", o.v, "Log verbosity (klog levels; 4 logs every request)")
      ->group(logging)
      ->capture_default_str();
  app.add_option("--vmodule", o.vmodule, "Per-file verbosity, e.g. server=4,nodes_resource=5")
      ->group(logging);

  app.add_option("--heap-trim-interval-seconds", o.heap_trim_interval_seconds,
                 "How often memory the allocator holds free (after a registration burst, a "
                 "large list) is given back to the system; 0 never")
      ->group(limits)
      ->capture_default_str();

  const std::string store = "Store";
  app.add_option("--data-dir", o.data_dir,
                 "Directory for the write-ahead log and snapshots (empty: memory only)")
      ->group(store);
  app.add_flag("--wal-truncate-at-corruption", o.wal_truncate_at_corruption,
               "On corruption in the middle of the log, discard from there on instead of "
               "refusing to start")
      ->group(store);
  app.add_option("--node-report-period-seconds", o.node_report_period_seconds,
                 "How often heartbeats refresh a node's published status")
      ->group(store)
      ->capture_default_str();
}

absl::Status Validate(const Options& o) {
  if (o.heap_trim_interval_seconds < 0) {
    return absl::InvalidArgumentError("--heap-trim-interval-seconds must not be negative");
  }
  if (o.secure_port < 0 || o.secure_port > 65535) {
    return absl::InvalidArgumentError("--secure-port must be between 0 and 65535");
  }
  if (o.tls_cert_file.empty() != o.tls_private_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert-file and --tls-private-key-file must be given together");
  }
  if (o.standalone && !o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--standalone generates its own certificates; drop --tls-cert-file");
  }
  if (o.max_watches >= o.worker_threads || o.max_watches < 1) {
    return absl::InvalidArgumentError(
        "--max-watches must be at least 1 and below --worker-threads");
  }
  if (o.max_requests_inflight < 1 || o.max_mutating_requests_inflight < 1) {
    return absl::InvalidArgumentError("inflight limits must be at least 1");
  }
  return absl::OkStatus();
}

absl::Status ApplyLogging(const Options& o) {
  log::SetVerbosity(o.v);
  if (!o.vmodule.empty()) return log::SetVModule(o.vmodule);
  return absl::OkStatus();
}

storage::StoreOptions CompleteStoreOptions(const Options& o) {
  storage::StoreOptions s;
  s.data_dir = o.data_dir;
  s.wal_truncate_at_corruption = o.wal_truncate_at_corruption;
  s.report_period_seconds = o.node_report_period_seconds;
  return s;
}

storage::PodStoreOptions CompletePodStoreOptions(const Options& o) {
  storage::PodStoreOptions p;
  p.data_dir = o.data_dir;
  return p;
}

absl::StatusOr<ServerConfig> CompleteServerConfig(const Options& o) {
  absl::Status valid = Validate(o);
  if (!valid.ok()) return valid;
  ServerConfig c;
  c.bind_address = o.bind_address;
  c.port = o.secure_port;
  c.max_requests_inflight = o.max_requests_inflight;
  c.max_mutating_requests_inflight = o.max_mutating_requests_inflight;
  c.worker_threads = o.worker_threads;
  c.max_watches = o.max_watches;
  c.max_request_body_bytes = static_cast<size_t>(o.max_request_body_bytes);
  c.handler.always_allow_paths = o.authorization_always_allow_paths;

  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "::1"};
  hosts.insert(hosts.end(), o.tls_sans.begin(), o.tls_sans.end());
  std::string cert_dir = DefaultCertDir(o);
  Authenticator::Options authn;

  if (o.standalone) {
    absl::StatusOr<std::string> ca_cert = EnsureStandaloneCertificates(cert_dir, hosts);
    if (!ca_cert.ok()) return ca_cert.status();
    c.serving = {cert_dir + "/apiserver.crt", cert_dir + "/apiserver.key"};
    auto ca = CertificateAuthority::FromFile(*ca_cert);
    if (!ca.ok()) return ca.status();
    authn.client_ca = *ca;
    c.authenticator = std::make_unique<Authenticator>(std::move(authn));
    c.authorizer = std::make_unique<AlwaysAllowAuthorizer>();
    KOLE_LOG(Warning,
             "STANDALONE MODE: every user with a client certificate from this server's own CA "
             "is allowed to do everything; do not expose this port",
             "caFile", *ca_cert, "adminCert", cert_dir + "/admin.crt");
    return c;
  }

  if (!o.tls_cert_file.empty()) {
    c.serving = {o.tls_cert_file, o.tls_private_key_file};
  } else {
    absl::StatusOr<CertPaths> generated = EnsureSelfSignedServingCert(cert_dir, hosts);
    if (!generated.ok()) return generated.status();
    c.serving = *generated;
    KOLE_LOG(Info, "Using a self-signed serving certificate", "cert", c.serving.cert_file);
  }

  // Authentication: flags first; the ConfigMap fills what they leave out.
  std::string authn_kubeconfig =
      o.authentication_kubeconfig.empty() ? o.kubeconfig : o.authentication_kubeconfig;
  // Without a kubeconfig, a pod's own service account is used, as upstream
  // components do.
  absl::StatusOr<KubeconfigTarget> in_cluster = InClusterConfig();
  std::shared_ptr<KubeClient> authn_client;
  if (!authn_kubeconfig.empty()) {
    absl::StatusOr<KubeconfigTarget> target = LoadKubeconfig(authn_kubeconfig);
    if (!target.ok()) return target.status();
    authn_client = std::make_shared<KubeClient>(*target);
  } else if (in_cluster.ok()) {
    authn_client = std::make_shared<KubeClient>(*in_cluster);
  }
  RequestHeaderConfig rh;
  rh.allowed_names = o.requestheader_allowed_names;
  rh.username_headers = o.requestheader_username_headers;
  rh.group_headers = o.requestheader_group_headers;
  rh.extra_prefixes = o.requestheader_extra_headers_prefix;
  std::string client_ca_pem;
  if (!o.requestheader_client_ca_file.empty()) {
    auto ca = CertificateAuthority::FromFile(o.requestheader_client_ca_file);
    if (!ca.ok()) return ca.status();
    rh.ca = *ca;
  } else if (authn_client != nullptr) {
    absl::StatusOr<RequestHeaderConfig> from_cluster =
        LoadAuthenticationConfigMap(*authn_client, &client_ca_pem);
    if (!from_cluster.ok()) {
      return absl::UnavailableError(
          fmt::format("cannot read kube-system/extension-apiserver-authentication: {}",
                      std::string(from_cluster.status().message())));
    }
    rh = *from_cluster;
    if (!o.requestheader_allowed_names.empty()) rh.allowed_names = o.requestheader_allowed_names;
  }
  if (rh.ca == nullptr) {
    KOLE_LOG(Warning,
             "No front-proxy CA: requests proxied by kube-apiserver will not be "
             "authenticated");
  }
  authn.request_header = rh;
  if (!o.client_ca_file.empty()) {
    auto ca = CertificateAuthority::FromFile(o.client_ca_file);
    if (!ca.ok()) return ca.status();
    authn.client_ca = *ca;
  } else if (!client_ca_pem.empty()) {
    auto ca = CertificateAuthority::FromPem(client_ca_pem);
    if (!ca.ok()) return ca.status();
    authn.client_ca = *ca;
  }
  if (authn_client != nullptr) {
    auto ttl = Duration("authentication-token-webhook-cache-ttl",
                        o.authentication_token_webhook_cache_ttl);
    if (!ttl.ok()) return ttl.status();
    authn.token_cache_ttl = *ttl;
    authn.token_review = TokenReviewWebhook(authn_client);
  }
  c.authenticator = std::make_unique<Authenticator>(std::move(authn));

  // What came from the ConfigMap is re-read every minute, as upstream does,
  // so that a rotated front-proxy or client CA takes effect without a
  // restart. Flags win over the ConfigMap, so they are kept as given.
  if (authn_client != nullptr && o.requestheader_client_ca_file.empty()) {
    Authenticator* authenticator = c.authenticator.get();
    bool client_ca_from_flag = !o.client_ca_file.empty();
    std::vector<std::string> allowed_names = o.requestheader_allowed_names;
    c.periodic.push_back({"extension-apiserver-authentication", 60,
                          [authn_client, authenticator, client_ca_from_flag, allowed_names] {
                            std::string pem;
                            absl::StatusOr<RequestHeaderConfig> rh =
                                LoadAuthenticationConfigMap(*authn_client, &pem);
                            if (!rh.ok()) {
                              KOLE_LOG_EVERY_N(Warning, 10,
                                               "Cannot re-read the authentication ConfigMap", "err",
                                               rh.status());
                              return;
                            }
                            if (!allowed_names.empty()) rh->allowed_names = allowed_names;
                            authenticator->SetRequestHeader(*rh);
                            if (!client_ca_from_flag && !pem.empty()) {
                              auto ca = CertificateAuthority::FromPem(pem);
                              if (ca.ok()) authenticator->SetClientCa(*ca);
                            }
                            KOLE_VLOG(4, "Authentication ConfigMap re-read");
                          }});
  }

  std::string authz_kubeconfig =
      o.authorization_kubeconfig.empty() ? o.kubeconfig : o.authorization_kubeconfig;
  if (authz_kubeconfig.empty() && !in_cluster.ok()) {
    return absl::InvalidArgumentError(
        "no authorization: give --authorization-kubeconfig (or --kubeconfig), run in a pod, "
        "or run --standalone");
  }
  absl::StatusOr<KubeconfigTarget> target =
      authz_kubeconfig.empty() ? in_cluster : LoadKubeconfig(authz_kubeconfig);
  if (!target.ok()) return target.status();
  WebhookAuthorizer::Options wo;
  auto allow = Duration("authorization-webhook-cache-authorized-ttl",
                        o.authorization_webhook_cache_authorized_ttl);
  auto deny = Duration("authorization-webhook-cache-unauthorized-ttl",
                       o.authorization_webhook_cache_unauthorized_ttl);
  if (!allow.ok()) return allow.status();
  if (!deny.ok()) return deny.status();
  wo.allow_ttl = *allow;
  wo.deny_ttl = *deny;
  auto cluster = std::make_shared<KubeClient>(*target);
  c.authorizer = WebhookAuthorizer::ForClient(cluster, wo);
  // The pods of EdgeDaemonSets in a namespace being deleted go for good.
  c.handler.namespace_terminating = NamespaceTerminatingChecker(cluster);
  return c;
}

absl::StatusOr<std::string> WriteStandaloneKubeconfig(const Options& o, int port) {
  std::string dir = DefaultCertDir(o);
  std::string path = dir + "/admin.kubeconfig";
  std::string host =
      o.bind_address == "0.0.0.0" || o.bind_address == "::" ? "127.0.0.1" : o.bind_address;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string text = fmt::format(
      "apiVersion: v1\nkind: Config\nclusters:\n- name: kole\n  cluster:\n"
      "    server: https://{}:{}\n    certificate-authority: {}/ca.crt\n"
      "users:\n- name: kole-admin\n  user:\n    client-certificate: {}/admin.crt\n"
      "    client-key: {}/admin.key\ncontexts:\n- name: kole\n  context:\n"
      "    cluster: kole\n    user: kole-admin\n    namespace: default\n"
      "current-context: kole\n",
      host, port, dir, dir, dir);
  FILE* f = fopen(path.c_str(), "w");
  if (f == nullptr) return absl::PermissionDeniedError(fmt::format("cannot write {}", path));
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
  return path;
}

}  // namespace kole::apiserver

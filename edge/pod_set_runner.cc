#include "edge/pod_set_runner.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"

namespace kole::edge {
namespace {

// A name that can be one level of a template topic.
bool UsableLevel(std::string_view name) {
  return !name.empty() && name.find_first_of("/+#") == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

bool SameState(const protocol::PodStatus& a, const protocol::PodStatus& b) {
  return a.phase == b.phase && a.ready == b.ready && a.restarts == b.restarts &&
         a.reason == b.reason;
}

}  // namespace

std::string_view PodRuntimeName(PodRuntimeKind kind) {
  return kind == PodRuntimeKind::kProcess ? "process" : "none";
}

PodSetRunner::PodSetRunner(PodSetRunnerOptions options) : options_(std::move(options)) {
  if (options_.runtime == PodRuntimeKind::kProcess) {
    runtime_ = std::make_unique<ProcessRuntime>(options_.process);
  }
}

PodSetRunner::~PodSetRunner() {
  if (runtime_ && !pods_.empty()) {
    KOLE_LOG(Info, "Stopping pods", "node", options_.node, "pods", pods_.size());
  }
}

std::string PodSetRunner::PodKey(const protocol::PodRef& ref) {
  return ref.namespace_ + "/" + ref.workload;
}

std::string PodSetRunner::TemplateKey(std::string_view namespace_, std::string_view workload,
                                      std::string_view revision) {
  return fmt::format("{}/{}/{}", namespace_, workload, revision);
}

bool PodSetRunner::SetDesired(const protocol::NodePods& set) {
  std::set<std::string> keys;
  for (const protocol::PodRef& ref : set.pods) {
    if (!UsableLevel(ref.namespace_) || !UsableLevel(ref.workload) || !UsableLevel(ref.revision)) {
      KOLE_LOG_EVERY_N(Warning, 10, "Refused a pod set: a name cannot be a topic level", "node",
                       options_.node, "podRev", set.pod_revision, "pod",
                       ref.namespace_ + "/" + ref.name);
      return false;
    }
    if (!keys.insert(PodKey(ref)).second) {
      KOLE_LOG_EVERY_N(Warning, 10, "Refused a pod set: a workload is listed twice", "node",
                       options_.node, "podRev", set.pod_revision, "workload", PodKey(ref));
      return false;
    }
  }
  if (set.pod_revision == desired_.pod_revision && set.pods == desired_.pods) return true;
  KOLE_VLOG(2, "Pod set received", "node", options_.node, "podRev", set.pod_revision, "pods",
            set.pods.size());
  desired_ = set;
  waiting_ = true;
  logged_waiting_ = false;
  TryApply();
  return true;
}

void PodSetRunner::OnTemplate(std::string_view ns, std::string_view workload,
                              std::string_view revision, std::string_view payload) {
  std::string key = TemplateKey(ns, workload, revision);
  if (payload.empty()) {
    // Cleared: no node needs this revision any more. Pods that run it keep
    // their spec.
    templates_.erase(key);
    return;
  }

  Template entry;
  protocol::WorkloadTemplate message;
  if (protocol::DecodeError e = protocol::DecodeWorkloadTemplate(payload, &message);
      e != protocol::DecodeError::kOk) {
    KOLE_LOG(Warning, "Workload template cannot be read; its pods will not run", "node",
             options_.node, "template", key, "reason", protocol::DecodeErrorName(e));
  } else if (message.namespace_ != ns || message.workload != workload ||
             message.revision != revision) {
    KOLE_LOG(Warning, "Workload template names another template than its topic", "node",
             options_.node, "template", key, "names",
             TemplateKey(message.namespace_, message.workload, message.revision));
  } else if (absl::StatusOr<PodTemplate> pod = ParsePodTemplate(message.template_json); !pod.ok()) {
    KOLE_LOG(Warning, "Workload template cannot be read; its pods will not run", "node",
             options_.node, "template", key, "err", pod.status());
  } else {
    if (!pod->ignored.empty() && options_.runtime == PodRuntimeKind::kProcess) {
      std::string ignored;
      for (const std::string& part : pod->ignored) {
        ignored += ignored.empty() ? "" : "; ";
        ignored += part;
      }
      KOLE_LOG(Info, "The process runtime ignores parts of a workload template", "node",
               options_.node, "template", key, "ignored", ignored);
    }
    entry.pod = *std::move(pod);
  }
  KOLE_VLOG(2, "Workload template received", "node", options_.node, "template", key, "usable",
            entry.pod.has_value());
  templates_.insert_or_assign(std::move(key), std::move(entry));
  PruneTemplates();
  if (waiting_) TryApply();
}

void PodSetRunner::PruneTemplates() {
  if (templates_.size() <= options_.max_templates) return;
  std::set<std::string> used;
  for (const protocol::PodRef& ref : desired_.pods) {
    used.insert(TemplateKey(ref.namespace_, ref.workload, ref.revision));
  }
  for (auto it = templates_.begin(); it != templates_.end();) {
    it = used.contains(it->first) ? std::next(it) : templates_.erase(it);
  }
}

std::vector<std::pair<std::string, std::string>> PodSetRunner::Workloads() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const protocol::PodRef& ref : desired_.pods) out.emplace_back(ref.namespace_, ref.workload);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool PodSetRunner::TryApply() {
  if (!waiting_) return false;

  // Every pod needs its template, unless it runs at that revision already.
  size_t missing = 0;
  for (const protocol::PodRef& ref : desired_.pods) {
    auto running = pods_.find(PodKey(ref));
    if (running != pods_.end() && running->second.ref.revision == ref.revision) continue;
    if (!templates_.contains(TemplateKey(ref.namespace_, ref.workload, ref.revision))) ++missing;
  }
  if (missing > 0) {
    if (!logged_waiting_) {
      KOLE_VLOG(1, "Pod set waits for workload templates", "node", options_.node, "podRev",
                desired_.pod_revision, "missing", missing);
      logged_waiting_ = true;
    }
    return false;
  }

  // The new set: pods kept at their revision keep their state; a changed
  // restart counter restarts them; the others are new.
  std::map<std::string, Pod, std::less<>> next;
  std::vector<std::string> restart;
  for (const protocol::PodRef& ref : desired_.pods) {
    std::string key = PodKey(ref);
    auto running = pods_.find(key);
    if (running != pods_.end() && running->second.ref.revision == ref.revision) {
      Pod pod = std::move(running->second);
      if (pod.ref.restart != ref.restart) {
        restart.push_back(key);
        pod.started = !runtime_;
        pod.view = View::kFresh;
      }
      pod.ref = ref;
      next.emplace(std::move(key), std::move(pod));
      continue;
    }
    const Template& t = templates_.at(TemplateKey(ref.namespace_, ref.workload, ref.revision));
    Pod pod{.ref = ref, .view = applied_once_ ? View::kFresh : View::kUnknown};
    if (t.pod) {
      pod.spec = BuildPodSpec(
          *t.pod, {.namespace_ = ref.namespace_, .name = ref.name, .node = options_.node}, key,
          ref.revision);
    } else {
      pod.spec = PodSpec{.key = key, .revision = ref.revision};  // "no containers"
    }
    pod.containers = pod.spec.containers.size();
    pod.started = !runtime_;
    next.emplace(std::move(key), std::move(pod));
  }
  pods_ = std::move(next);

  if (runtime_) {
    // Restarts first, on the pods as they run: the restart count read here
    // plus Restart()'s own is where the cloud's new pod starts from 0.
    if (!restart.empty()) {
      std::vector<PodReport> reports = runtime_->Poll();
      for (const std::string& key : restart) {
        auto report = std::find_if(reports.begin(), reports.end(),
                                   [&](const PodReport& r) { return r.key == key; });
        pods_.at(key).restart_base = (report == reports.end() ? 0 : report->restarts) + 1;
        KOLE_LOG(Info, "Restarting a pod the cloud deleted", "node", options_.node, "pod", key);
        runtime_->Restart(key);
      }
    }
    std::vector<PodSpec> specs;
    for (const auto& [key, pod] : pods_) specs.push_back(pod.spec);
    runtime_->Apply(specs);
  }
  KOLE_LOG(Info, "Pod set applied", "node", options_.node, "podRev", desired_.pod_revision, "pods",
           pods_.size(), "runtime", PodRuntimeName(options_.runtime));
  applied_revision_ = desired_.pod_revision;
  applied_once_ = true;
  waiting_ = false;
  if (!runtime_ || pods_.empty()) heartbeat_revision_ = applied_revision_;
  return true;
}

protocol::PodStatus PodSetRunner::AsTold(const Pod& pod, uint32_t restarts) const {
  return protocol::PodStatus{.namespace_ = pod.ref.namespace_,
                             .workload = pod.ref.workload,
                             .revision = pod.ref.revision,
                             .phase = "Running",
                             .ready = static_cast<uint32_t>(pod.containers),
                             .restarts = restarts};
}

std::vector<protocol::PodStatus> PodSetRunner::Poll(absl::Time now) {
  TryApply();
  if (!runtime_) return {};

  // The runtime's view of each pod, in the protocol's words.
  for (const PodReport& r : runtime_->Poll()) {
    auto it = pods_.find(r.key);
    if (it == pods_.end() || it->second.ref.revision != r.revision) continue;
    Pod& pod = it->second;
    uint32_t restarts = static_cast<uint32_t>(std::max(0, r.restarts - pod.restart_base));
    pod.current = protocol::PodStatus{
        .namespace_ = pod.ref.namespace_,
        .workload = pod.ref.workload,
        .revision = pod.ref.revision,
        .phase = std::string(PodPhaseName(r.phase)),
        .ready = static_cast<uint32_t>(r.ready_containers),
        .restarts = restarts,
        .last_restart = restarts > 0 ? static_cast<uint64_t>(r.last_restart_unix) : 0,
        .reason = r.reason};
    pod.started = !(r.phase == PodPhase::kPending && r.reason == "ContainerCreating");
  }
  if (std::all_of(pods_.begin(), pods_.end(), [](const auto& p) { return p.second.started; })) {
    heartbeat_revision_ = applied_revision_;
  }

  // Reports: what differs from what the cloud holds.
  std::vector<protocol::PodStatus> due;
  if (now < hold_until_) return due;
  for (const auto& [key, pod] : pods_) {
    if (!pod.started) continue;
    bool report = false;
    switch (pod.view) {
      case View::kUnknown:
        report = true;
        break;
      case View::kFresh:
        report = !SameState(pod.current, AsTold(pod, 0));
        break;
      case View::kKnown:
        report = !SameState(pod.current, pod.cloud);
        break;
    }
    if (report) due.push_back(pod.current);
  }
  return due;
}

void PodSetRunner::ReportsSent(const std::vector<protocol::PodStatus>& sent) {
  for (const protocol::PodStatus& status : sent) {
    auto it = pods_.find(status.namespace_ + "/" + status.workload);
    if (it == pods_.end() || it->second.ref.revision != status.revision) continue;
    Pod& pod = it->second;
    if (pod.view != View::kKnown || pod.cloud.reason != status.reason ||
        pod.cloud.phase != status.phase) {
      KOLE_LOG(Info, "Pod status reported", "node", options_.node, "pod", it->first, "revision",
               status.revision, "phase", status.phase, "reason", status.reason, "ready",
               status.ready, "restarts", status.restarts);
    } else {
      KOLE_VLOG(2, "Pod status reported", "node", options_.node, "pod", it->first, "revision",
                status.revision, "phase", status.phase, "reason", status.reason, "ready",
                status.ready, "restarts", status.restarts);
    }
    pod.view = View::kKnown;
    pod.cloud = status;
  }
}

std::string PodSetRunner::HeartbeatRevision(absl::Time now) {
  if (heartbeat_revision_ != confirmed_revision_ && !heartbeat_revision_.empty() &&
      heartbeat_revision_ == applied_revision_) {
    // The cloud makes this set's pods Running and ready, except those with
    // a Running report.
    for (auto& [key, pod] : pods_) {
      if (pod.view == View::kFresh) {
        pod.view = View::kKnown;
        pod.cloud = AsTold(pod, 0);
      } else if (pod.view == View::kKnown && pod.cloud.phase != "Running") {
        pod.cloud = AsTold(pod, pod.cloud.restarts);
      }
    }
    hold_until_ = now + options_.report_hold;
  }
  confirmed_revision_ = heartbeat_revision_;
  return heartbeat_revision_;
}

}  // namespace kole::edge

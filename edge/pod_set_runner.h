#pragma once

// PodSetRunner: the pods side of kole-agent for one node. It takes the
// desired pod set the cloud sends on <prefix>/nodes/<node>/pods and the
// retained workload templates, runs the set once every template it names is
// there, and says what the heartbeat's podRev and the podstatus channel
// should carry (docs/agent.md, "Pods"). It knows no MQTT: the agent feeds it
// messages and sends what it returns.
//
// Runtimes:
//   kNone     nothing is started; an applied set counts as running as told.
//   kProcess  ProcessRuntime (process_runtime.h) runs each container as a
//             supervised host process.
//
// The set and podRev. A set is applied (given to the runtime) as a whole,
// once the template of every pod in it has arrived (pods it already runs at
// the same revision need none). Until then the previous set keeps running.
// Heartbeats carry the revision of the applied set once every pod of it has
// been started: with kNone at once; with kProcess once no pod of the set is
// Pending/ContainerCreating any more, that is every container was started
// (and may since have failed, crash-looped or completed) or failed to start.
// Until then they carry the revision they carried before. An empty set has
// the revision "".
//
// Restarts. A pod whose `restart` counter changes while its revision stays
// is restarted (ProcessRuntime::Restart). The cloud deleted that pod and made
// a new one, so the restarts reported for it count again from 0.
//
// Reports (podstatus) mirror what the cloud holds for each pod. The cloud
// sets every pod of a set to Running and ready when it first sees the set's
// revision in a heartbeat, except pods for which it holds a report with
// phase Running; a report overrides that. So a report is due when a pod's
// phase, ready count, restarts or reason differ from what the cloud holds:
//   - a new pod or a restarted one: from Running and ready (what the
//     confirming heartbeat makes of it), so a pod that starts well is never
//     reported;
//   - pods of the first set applied after the agent started: always once,
//     since the cloud may still hold reports of the previous run;
//   - after a report was sent: from what it said;
//   - after a heartbeat first carried a set's revision: pods whose last
//     report was not Running count as Running and ready again, and reports
//     wait `report_hold` so that they reach the cloud after that heartbeat.
// Pods still ContainerCreating are never reported (podRev covers them). With
// kNone nothing is ever reported.
//
//   PodSetRunner runner({.node = "n1", .runtime = PodRuntimeKind::kProcess,
//                        .process = {.work_dir = state_dir + "/pods"}});
//   runner.SetDesired(pods);                       // pods channel
//   runner.OnTemplate(ns, workload, rev, payload);  // workload topics
//   std::vector<protocol::PodStatus> due = runner.Poll(absl::Now());  // ~1/s
//   if (Publish(due)) runner.ReportsSent(due);
//   beat.pod_revision = runner.HeartbeatRevision(absl::Now());
//
// Thread safety: none; the agent calls every method from its loop thread.
// The destructor stops every process (ProcessRuntime's destructor: up to its
// stop_grace).

#include <absl/time/time.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edge/pod_template.h"
#include "edge/process_runtime.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

enum class PodRuntimeKind : uint8_t { kNone, kProcess };

// "none", "process".
std::string_view PodRuntimeName(PodRuntimeKind kind);

struct PodSetRunnerOptions {
  std::string node;
  PodRuntimeKind runtime = PodRuntimeKind::kNone;
  // kProcess: the runtime's options (work_dir is required).
  ProcessRuntimeOptions process;
  // How long reports wait after a heartbeat first carried a set's revision.
  absl::Duration report_hold = absl::Seconds(1);
  // Templates kept (received and not cleared); past this, those no set uses
  // are dropped.
  size_t max_templates = 256;
};

class PodSetRunner {
 public:
  explicit PodSetRunner(PodSetRunnerOptions options);
  ~PodSetRunner();
  PodSetRunner(const PodSetRunner&) = delete;
  PodSetRunner& operator=(const PodSetRunner&) = delete;

  // The cloud's desired set. A resend of the current set changes nothing.
  // Returns false, changing nothing, for a set this device cannot take: a
  // workload named twice, or a namespace, workload or revision that is empty
  // or holds '/', '+' or '#' (it could not name a template topic).
  bool SetDesired(const protocol::NodePods& set);

  // A message on the template topic of namespace/workload/revision: a
  // template, or an empty payload (the cloud cleared it). A payload that
  // does not decode, names another template than its topic, or whose pod
  // spec cannot be read is kept as an unusable template: its pod runs
  // nothing and reports Failed/StartError (the reason is logged).
  void OnTemplate(std::string_view namespace_, std::string_view workload, std::string_view revision,
                  std::string_view payload);

  // (namespace, workload) of every pod of the desired set, sorted: the
  // template topics the agent needs to read.
  std::vector<std::pair<std::string, std::string>> Workloads() const;

  // Applies the desired set if it waits and its templates are all there,
  // polls the runtime (restarts, reaping) and returns the reports due now,
  // ordered by namespace and workload. The same reports come back from the
  // next call until ReportsSent() takes them.
  std::vector<protocol::PodStatus> Poll(absl::Time now);

  // `sent` (from Poll()) reached the broker.
  void ReportsSent(const std::vector<protocol::PodStatus>& sent);

  // The podRev of a heartbeat sent now. Call it once per heartbeat: the
  // first heartbeat carrying a revision changes what the cloud holds.
  std::string HeartbeatRevision(absl::Time now);

  // The revision of the last desired set ("" for none or the empty set),
  // and whether that set waits for templates.
  const std::string& desired_revision() const { return desired_.pod_revision; }
  bool waiting() const { return waiting_; }
  // The revision of the set given to the runtime.
  const std::string& applied_revision() const { return applied_revision_; }

  // The runtime, or null with kNone. For tests (log paths).
  const ProcessRuntime* process_runtime() const { return runtime_.get(); }

 private:
  // What the cloud holds for one pod.
  enum class View : uint8_t {
    kUnknown,  // Possibly a report of a previous run of the agent.
    kFresh,    // The pod as the cloud created it; a confirming heartbeat
               // makes it Running and ready.
    kKnown,    // `cloud`.
  };
  struct Pod {
    protocol::PodRef ref;
    PodSpec spec;
    size_t containers = 0;
    // The runtime's restart count when the cloud last recreated the pod.
    int restart_base = 0;
    bool started = false;
    View view = View::kFresh;
    protocol::PodStatus cloud;
    protocol::PodStatus current;
  };
  struct Template {
    std::optional<PodTemplate> pod;  // nullopt: unusable.
  };

  // "<namespace>/<workload>" and "<namespace>/<workload>/<revision>".
  static std::string PodKey(const protocol::PodRef& ref);
  static std::string TemplateKey(std::string_view namespace_, std::string_view workload,
                                 std::string_view revision);
  // Gives the desired set to the runtime if every template is there.
  bool TryApply();
  protocol::PodStatus AsTold(const Pod& pod, uint32_t restarts) const;
  void PruneTemplates();

  const PodSetRunnerOptions options_;
  std::unique_ptr<ProcessRuntime> runtime_;

  protocol::NodePods desired_;
  bool waiting_ = false;
  std::string applied_revision_;
  bool applied_once_ = false;
  std::map<std::string, Pod, std::less<>> pods_;  // The applied set, by PodKey.
  std::map<std::string, Template, std::less<>> templates_;
  // The revision heartbeats carry, and the one the last heartbeat carried.
  std::string heartbeat_revision_;
  std::string confirmed_revision_;
  absl::Time hold_until_ = absl::InfinitePast();
  // The current wait for templates was logged.
  bool logged_waiting_ = false;
};

}  // namespace kole::edge

#pragma once

// ProcessRuntime runs the containers of pods as plain, supervised host
// processes. kole-agent uses it with --runtime=process on devices that have
// no container runtime.
//
// What it is: for every container of a pod it starts `command` followed by
// `args` directly (no shell), restarts it by the pod's restartPolicy with
// kubelet's backoff (10s doubling to 5m, reset after 10m of good running), and
// reports one PodReport per pod. Each container gets
//   - the environment PATH (the agent's own PATH) plus the container's `env`;
//     nothing else of the agent's environment is passed on;
//   - the working directory <work_dir>/<pod dir>, where <pod dir> is the key
//     with '/' turned into '_' (PodDir() gives the exact path);
//   - stdin from /dev/null, stdout and stderr appended to
//     <pod dir>/<container>.log, truncated to zero once it passes
//     max_log_bytes (10 MiB);
//   - its own process group: stopping a container signals the whole group, so
//     the children it spawned go with it. When a container's main process
//     exits, what is left of its group is killed, as when a container ends.
//
// What it is not: a container runtime. There is no isolation of any kind (no
// namespaces, cgroups, seccomp or resource limits), and no images: the
// container's `image` is ignored and the command must already exist on the
// device. Processes run as the agent's user, share its network and see its
// whole file system. Volumes, probes, ports and init containers are not
// handled. A process that leaves its process group (setsid, setpgid) is not
// stopped with its container.
//
//   ProcessRuntime runtime({.work_dir = "/var/lib/kole-agent/pods"});
//   runtime.Apply(pods);                  // whenever the pod set changes
//   for (;;) {                            // the agent's loop, about 1/s
//     std::vector<PodReport> reports = runtime.Poll();
//     ...
//   }
//
// Thread safety: none; one thread at a time. The agent calls every method
// from its loop thread. Apply(), Restart() and Poll() never wait for a
// process to exit: stops are asynchronous (SIGTERM now, SIGKILL from a later
// Poll() once stop_grace has passed). Only the destructor waits.
//
// Signals and children: the runtime reaps only the processes it started
// (waitpid on their pids, never on -1), so it coexists with other children
// of the agent. The agent must not set SIGCHLD to SIG_IGN, which would make
// the kernel reap them and hide their exit codes.
//
// Restarts of the agent: the runtime keeps no state on disk. Processes
// started by an agent that crashed are not adopted by the next one; they keep
// running beside the new ones until stopped by hand. A clean stop of the
// agent (destructor) stops all of them.

#include <absl/time/time.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::edge {

// One container: what to execute and with which extra environment.
struct ContainerSpec {
  // Unique within the pod; names the log file. Kubernetes limits it to a
  // DNS label; other characters are escaped in the file name.
  std::string name;
  // argv[0..]: command[0] is looked up in PATH unless it contains '/'
  // (then a relative path is relative to the pod's working directory).
  // Kubernetes' image entrypoint does not exist here, so an empty command
  // is an error (StartError).
  std::vector<std::string> command;
  // Appended to `command`.
  std::vector<std::string> args;
  // Added to PATH; a later entry with the same name replaces an earlier one
  // (including PATH itself).
  std::vector<std::pair<std::string, std::string>> env;
};

struct PodSpec {
  // "namespace/name" of the workload; unique per pod on this device.
  std::string key;
  // Opaque; a different revision for the same key replaces the pod. Other
  // changes to a spec under the same revision are ignored.
  std::string revision;
  std::vector<ContainerSpec> containers;
  // "Always" | "OnFailure" | "Never", as Kubernetes.
  std::string restart_policy = "Always";
};

enum class PodPhase { kPending, kRunning, kSucceeded, kFailed };

// "Pending", "Running", "Succeeded", "Failed": the Kubernetes spelling.
std::string_view PodPhaseName(PodPhase phase);

// The state of one pod, worded as a Kubernetes pod status.
//
// phase:
//   Pending    some container has not started yet in this incarnation of the
//              pod (just applied, waiting for the previous revision's
//              processes to stop, or failing to start);
//   Running    every container has started and at least one is not finished;
//   Succeeded  every container has finished and all exited 0 (OnFailure and
//              Never only; Always never finishes);
//   Failed     every container has finished and one failed (Never), or the
//              spec is unusable (empty command, duplicate container names,
//              unknown restart policy).
// reason, the first that applies:
//   "StartError"        a container could not be started (missing executable,
//                       working directory not creatable) or the spec is unusable;
//   "CrashLoopBackOff"  a container exited and waits out its backoff;
//   "Error"             a container exited non-zero and will not restart (Never);
//   "ContainerCreating" the pod is Pending for any other cause;
//   "Completed"         the pod Succeeded;
//   ""                  otherwise.
struct PodReport {
  std::string key;
  std::string revision;
  PodPhase phase = PodPhase::kPending;
  // Containers whose process is alive.
  int ready_containers = 0;
  int containers = 0;
  // Restarts in this revision: each automatic restart of a container, plus
  // one per Restart(). A new revision starts again at 0.
  int restarts = 0;
  std::string reason;
  // Human-readable detail for StartError, CrashLoopBackOff and Error, naming
  // the container; empty otherwise.
  std::string message;
  // Unix seconds of the last restart; 0 if none.
  int64_t last_restart_unix = 0;
};

struct ProcessRuntimeOptions {
  // Holds one directory per pod (working directory and logs). Created on
  // demand. A pod's directory is removed when the pod is removed by Apply()
  // and its processes are gone.
  std::string work_dir;
  // Delay before the first automatic restart; doubles after each restart up
  // to max_backoff.
  absl::Duration initial_backoff = absl::Seconds(10);
  absl::Duration max_backoff = absl::Minutes(5);
  // Time between SIGTERM and SIGKILL when a container is stopped.
  absl::Duration stop_grace = absl::Seconds(10);
  // A container that ran this long before exiting restarts after
  // initial_backoff again.
  absl::Duration stable_after = absl::Minutes(10);
  // A log file larger than this is truncated to zero by Poll().
  int64_t max_log_bytes = int64_t{10} << 20;
};

class ProcessRuntime {
 public:
  // Starts nothing. PATH for the containers is read from the agent's
  // environment now (a standard PATH if unset).
  explicit ProcessRuntime(ProcessRuntimeOptions options);
  // Stops every process: SIGTERM to each process group, SIGKILL to those
  // still alive after stop_grace. Blocks until they are all reaped, so up to
  // stop_grace plus the time the kernel takes to kill them.
  ~ProcessRuntime();
  ProcessRuntime(const ProcessRuntime&) = delete;
  ProcessRuntime& operator=(const ProcessRuntime&) = delete;

  // Makes the set of pods equal `pods`: starts new pods, stops pods no
  // longer listed, and replaces pods whose revision changed (stops the old
  // processes; the new ones start once the old ones are gone, the pod being
  // Pending/ContainerCreating meanwhile). A key listed twice keeps its first
  // spec. Unusable specs become Failed/StartError reports, never errors.
  void Apply(const std::vector<PodSpec>& pods);

  // Restarts one pod now, as kubelet would recreate a deleted pod: stops its
  // processes, starts all its containers again once they are gone (also
  // those that had Completed or Failed), resets their backoff and counts one
  // restart. Returns false, doing nothing, if `key` is not applied.
  bool Restart(std::string_view key);

  // Reaps exited containers, restarts them by policy once their backoff has
  // passed, escalates stops past stop_grace to SIGKILL, truncates oversized
  // logs, and returns one report per applied pod, ordered by key. Call it
  // about once a second; timing is only as fine as the calls. Never waits for
  // a process.
  std::vector<PodReport> Poll();

  // <work_dir>/<key with '/' as '_'>: the pod's working directory. Characters
  // other than letters, digits, '-' and '.' (and a leading '.') are escaped
  // as %XX, so distinct keys never share a directory.
  std::string PodDir(std::string_view key) const;
  // PodDir(key)/<container, escaped the same way>.log
  std::string LogPath(std::string_view key, std::string_view container) const;

 private:
  enum class State {
    kWaiting,    // To be started at start_at (first start or after Restart()).
    kRunning,    // pid is alive or not yet reaped.
    kBackOff,    // Exited or failed to start; restarts at start_at.
    kCompleted,  // Exited 0 and will not restart.
    kFailed,     // Exited non-zero or failed to start, and will not restart.
  };
  struct Container {
    ContainerSpec spec;
    State state = State::kWaiting;
    pid_t pid = -1;
    absl::Time start_at = absl::InfinitePast();
    absl::Time started_at;
    absl::Duration backoff;  // The next restart delay.
    bool started = false;    // Started at least once in this incarnation.
    std::string error;       // Why the last start failed, or the last exit.
    bool start_failed = false;
  };
  struct Pod {
    PodSpec spec;
    std::string invalid;  // Why the spec is unusable; nothing runs if set.
    std::vector<Container> containers;
    int restarts = 0;
    int64_t last_restart_unix = 0;
  };
  // A container's process group, sent SIGTERM and waiting to exit.
  struct StoppingGroup {
    std::string key;
    pid_t pid;
    absl::Time kill_at;
    bool killed = false;
  };

  Pod NewPod(const PodSpec& spec) const;
  void StopPod(Pod& pod, absl::Time now);
  void Step(absl::Time now);
  void StepContainer(Pod& pod, Container& container, absl::Time now);
  void Start(Pod& pod, Container& container, absl::Time now);
  void Exited(Pod& pod, Container& container, int status, absl::Time now);
  void Schedule(Container& container, absl::Time now);
  bool IsStopping(std::string_view key) const;
  void ReapStopping(absl::Time now);
  PodReport Report(const Pod& pod) const;

  const ProcessRuntimeOptions options_;
  const std::string work_dir_;  // Absolute.
  const std::string path_;      // PATH given to containers.
  std::map<std::string, Pod, std::less<>> pods_;
  std::vector<StoppingGroup> stopping_;
  // Directories of removed pods, deleted once their processes are gone.
  std::set<std::string, std::less<>> removed_;
};

}  // namespace kole::edge

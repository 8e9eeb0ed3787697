// kole-edge-sim: simulates a fleet of edge nodes speaking the KOLE edge
// protocol to an MQTT broker (DESIGN §7: `kole-edge-sim --broker URL --nodes N`
// registers N nodes and keeps them heartbeating, prints progress and a final
// line of figures).

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/log.h"
#include "edge/cli_util.h"
#include "edge/edge_sim.h"
#include "edge/sim_report.h"

namespace kole::edge {
namespace {

// Writes the status file atomically (rename), so a reader never sees half.
void WriteStatusFile(const std::string& path, const std::string& text) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out) return;
  }
  std::rename(temporary.c_str(), path.c_str());
}

// --print-registrations: what every node would register, without a broker.
int PrintRegistrations(SimOptions options, const std::string& path) {
  absl::Status status = CompleteSimOptions(&options);
  absl::StatusOr<FleetGenerator> fleet =
      status.ok() ? FleetGenerator::Create(options.fleet) : absl::StatusOr<FleetGenerator>(status);
  if (!fleet.ok()) {
    std::fprintf(stderr, "kole-edge-sim: %s\n", std::string(fleet.status().message()).c_str());
    return 2;
  }
  std::FILE* out = path == "-" ? stdout : std::fopen(path.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "kole-edge-sim: cannot write %s\n", path.c_str());
    return 2;
  }
  NodeSpec spec;
  protocol::RegisterMessage message;
  message.nodes.resize(1);
  std::string payload;
  for (uint64_t i = options.first_index; i < options.first_index + options.nodes; ++i) {
    protocol::Registration& r = message.nodes.front();
    FillSimulatedRegistration(*fleet, options.send_user_labels, i, /*boot=*/0, &spec, &r);
    r.epoch = options.epoch;
    message.id = i;
    payload.clear();
    protocol::EncodeRegister(message, /*on_node_topic=*/true, payload);
    payload += '\n';
    std::fwrite(payload.data(), 1, payload.size(), out);
  }
  bool ok = std::fflush(out) == 0 && std::ferror(out) == 0;
  if (out != stdout) ok = std::fclose(out) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "kole-edge-sim: writing %s failed\n", path.c_str());
    return 1;
  }
  return 0;
}

int Main(int argc, char** argv) {
  SimOptions options;
  std::string heartbeat_interval = "10s";
  std::string pod_start_delay = "2s";
  std::string crash_report_interval = "30s";
  std::string flush_interval = "500ms";
  std::string duration = "0";
  std::string retry_initial = "2s";
  std::string retry_max = "60s";
  std::string progress_interval;
  std::string status_file;
  bool exit_when_registered = false;
  int verbosity = 0;
  std::string vmodule;

  CLI::App app{"kole-edge-sim: a simulated fleet of KOLE edge nodes over MQTT"};
  app.option_defaults()->always_capture_default();
  auto* connection = "Connection";
  app.add_option("--broker", options.broker, "Broker URL: tcp://, mqtt://, ssl:// or mqtts://")
      ->group(connection);
  app.add_option("--username", options.username,
                 "MQTT user name (default: the client id, i.e. node or gateway name)")
      ->group(connection);
  std::string password_file;
  app.add_option("--password", options.password, "MQTT password (prefer --password-file)")
      ->group(connection);
  app.add_option("--password-file", password_file, "File whose first line is the MQTT password")
      ->group(connection);
  app.add_option("--ca-file", options.ca_file, "CA of the broker's certificate (TLS)")
      ->group(connection);
  app.add_option("--cert-file", options.cert_file, "Client certificate (TLS)")->group(connection);
  app.add_option("--key-file", options.key_file, "Client key (TLS)")->group(connection);
  app.add_flag("!--no-verify-hostname", options.verify_hostname,
               "Do not check the broker's host name against its certificate")
      ->group(connection);
  app.add_option("--topic-prefix", options.topic_prefix, "Topic prefix")->group(connection);

  auto* fleet = "Fleet";
  app.add_option("--nodes", options.nodes, "Nodes to simulate")->group(fleet);
  app.add_option("--connections", options.connections,
                 "MQTT connections; 0: one gateway per 1000 nodes; equal to --nodes: one node "
                 "connection per node")
      ->group(fleet);
  app.add_option("--first-index", options.first_index,
                 "Index of the first node in the seeded fleet (to split a fleet over hosts)")
      ->group(fleet);
  app.add_option("--seed", options.fleet.seed, "Fleet generator seed")->group(fleet);
  app.add_option("--sites", options.fleet.site_count, "Sites")->group(fleet);
  app.add_option("--regions", options.fleet.region_count, "Regions")->group(fleet);
  app.add_option("--zones", options.fleet.zone_count, "Zones")->group(fleet);
  app.add_option("--hardware-types", options.fleet.hardware_type_count, "Hardware types")
      ->group(fleet);
  app.add_option("--os-images", options.fleet.os_image_count, "OS images")->group(fleet);
  app.add_option("--kernel-versions", options.fleet.kernel_version_count, "Kernel versions")
      ->group(fleet);
  app.add_option("--agent-versions", options.fleet.agent_version_count, "Agent versions")
      ->group(fleet);
  app.add_option("--container-runtime-versions", options.fleet.container_runtime_version_count,
                 "Container runtime versions")
      ->group(fleet);
  app.add_option("--customers", options.fleet.customer_count, "Customers")->group(fleet);
  app.add_option("--popularity-skew", options.fleet.popularity_skew,
                 "Zipf exponent of hardware, OS, agent, runtime and customer popularity")
      ->group(fleet);
  app.add_flag("--send-user-labels", options.send_user_labels,
               "Also register the generated labels users own (customer, tier)")
      ->group(fleet);
  app.add_option("--epoch", options.epoch,
                 "First epoch of every node; 0: the current Unix time in seconds")
      ->group(fleet);

  auto* behaviour = "Behaviour";
  app.add_option("--heartbeat-interval", heartbeat_interval, "Heartbeat interval per node")
      ->group(behaviour);
  app.add_option("--register-rate", options.register_rate,
                 "Registrations per second at most; 0: no cap")
      ->group(behaviour);
  app.add_option("--max-pending-registrations", options.max_pending_registrations,
                 "Registrations sent and not yet acknowledged, at most")
      ->group(behaviour);
  app.add_option("--batch", options.batch, "Entries per gateway message (<= 1000)")
      ->group(behaviour);
  app.add_option("--flush-interval", flush_interval, "How often each connection sends what is due")
      ->group(behaviour);
  app.add_option("--retry-initial-backoff", retry_initial,
                 "First wait for a registration's ack before sending it again")
      ->group(behaviour);
  app.add_option("--retry-max-backoff", retry_max, "Longest wait between registration retries")
      ->group(behaviour);
  app.add_flag("--assume-accepted", options.assume_accepted,
               "Treat registrations as accepted once published (no cloud; broker load tests)")
      ->group(behaviour);
  app.add_option("--threads", options.threads, "Worker threads")->group(behaviour);
  auto* pods = "Pods";
  app.add_option("--pod-start-delay", pod_start_delay,
                 "A node runs a new pod set this long after it arrives (spread 0.5x-1.5x)")
      ->group(pods);
  app.add_option("--pod-failure-rate", options.pod_failure_rate,
                 "Fraction of pod sets that crash-loop (reported as CrashLoopBackOff)")
      ->check(CLI::Range(0.0, 1.0))
      ->group(pods);
  app.add_option("--crash-report-interval", crash_report_interval,
                 "How often a crash-looping pod reports another restart")
      ->group(pods);

  auto* faults = "Fault injection (probabilities per message)";
  app.add_option("--duplicate-rate", options.faults.duplicate_rate, "Send a message twice")
      ->group(faults);
  app.add_option("--reorder-rate", options.faults.reorder_rate,
                 "Hold a message back and send it after the next one")
      ->group(faults);
  app.add_option("--drop-rate", options.faults.drop_rate, "Do not send a message")->group(faults);
  app.add_option("--malformed-rate", options.faults.malformed_rate,
                 "Also send a garbage, oversized, wrong-type or truncated payload")
      ->group(faults);
  app.add_option("--restart-rate", options.faults.restart_rate,
                 "Per heartbeat: the node restarts (new boot id, epoch + 1, registers again)")
      ->group(faults);

  auto* run = "Run";
  app.add_option("--duration", duration,
                 "Run this long, then exit 0 (1 with --exit-when-registered if not every node "
                 "was registered by then); 0: until SIGINT/SIGTERM")
      ->group(run);
  app.add_flag("--exit-when-registered", exit_when_registered,
               "Exit 0 (with the figures) once every node is acknowledged")
      ->group(run);
  app.add_option("--status-file", status_file,
                 "Keep key=value status lines in this file (rewritten every second)")
      ->group(run);
  app.add_option("--progress-interval", progress_interval,
                 "Progress line interval (default: 1s on a terminal, 10s otherwise)")
      ->group(run);
  std::string print_registrations;
  app.add_option("--print-registrations", print_registrations,
                 "Write the registration of every node to this file (- for standard output), "
                 "one JSON payload a line as a node connection publishes it, then exit; the peer "
                 "benchmark creates the same nodes in kube-apiserver from them")
      ->group(run);
  app.add_option("-v,--v", verbosity, "Log verbosity (klog levels)")->group(run);
  app.add_option("--vmodule", vmodule, "Per-file verbosity, e.g. edge_sim=4")->group(run);
  CLI11_PARSE(app, argc, argv);

  if (absl::Status status = ApplyLogFlags(verbosity, vmodule); !status.ok()) {
    std::fprintf(stderr, "kole-edge-sim: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  if (!password_file.empty()) {
    std::ifstream in(password_file);
    if (!in || !std::getline(in, options.password)) {
      std::fprintf(stderr, "kole-edge-sim: cannot read --password-file %s\n",
                   password_file.c_str());
      return 2;
    }
  }
  const bool tty = isatty(STDOUT_FILENO) == 1;
  absl::Duration run_for, progress_every;
  for (auto [text, out] :
       {std::pair{&heartbeat_interval, &options.heartbeat_interval},
        std::pair{&flush_interval, &options.flush_interval}, std::pair{&duration, &run_for},
        std::pair{&retry_initial, &options.retry.initial},
        std::pair{&retry_max, &options.retry.max},
        std::pair{&pod_start_delay, &options.pod_start_delay},
        std::pair{&crash_report_interval, &options.crash_report_interval}}) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag(*text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "kole-edge-sim: %s\n", std::string(parsed.status().message()).c_str());
      return 2;
    }
    *out = *parsed;
  }
  progress_every = tty ? absl::Seconds(1) : absl::Seconds(10);
  if (!progress_interval.empty()) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag(progress_interval);
    if (!parsed.ok() || *parsed <= absl::ZeroDuration()) {
      std::fprintf(stderr, "kole-edge-sim: bad --progress-interval\n");
      return 2;
    }
    progress_every = *parsed;
  }

  if (!print_registrations.empty()) return PrintRegistrations(options, print_registrations);

  // Signals are taken synchronously by this thread; every thread started
  // below inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<EdgeSimulator>> sim = EdgeSimulator::Create(options);
  if (!sim.ok()) {
    std::fprintf(stderr, "kole-edge-sim: %s\n", std::string(sim.status().message()).c_str());
    return 2;
  }
  KOLE_LOG(Info, "Starting kole-edge-sim", "broker", options.broker, "nodes", options.nodes,
           "connections", (*sim)->options().connections, "heartbeatInterval",
           absl::FormatDuration(options.heartbeat_interval));
  (*sim)->Start();

  const absl::Time start = absl::Now();
  absl::Time last_progress = start;
  absl::Time last_status = start;
  SimCounters before = (*sim)->Counters();
  // The steady phase starts when every node is registered.
  absl::Time steady_start = start;
  SimCounters steady_before = before;
  bool steady = false;
  int exit_code = 0;
  while (true) {
    timespec wait{0, 100'000'000};
    int signal = sigtimedwait(&signals, nullptr, &wait);
    if (signal == SIGINT || signal == SIGTERM) {
      KOLE_LOG(Info, "Stopping on signal", "signal", signal);
      break;
    }
    absl::Time now = absl::Now();
    bool registered = (*sim)->AllRegistered();
    if (registered && !steady) {
      steady = true;
      steady_start = now;
      steady_before = (*sim)->Counters();
    }
    if (!status_file.empty() && now - last_status >= absl::Seconds(1)) {
      WriteStatusFile(status_file, StatusText((*sim)->Counters(), registered));
      last_status = now;
    }
    if (now - last_progress >= progress_every) {
      SimCounters counters = (*sim)->Counters();
      std::string line = ProgressLine(counters, before, absl::ToDoubleSeconds(now - last_progress));
      if (tty) {
        std::printf("\r\033[K%s", line.c_str());
      } else {
        std::printf("progress %s\n", line.c_str());
      }
      std::fflush(stdout);
      before = counters;
      last_progress = now;
    }
    if (exit_when_registered && registered) break;
    if (run_for > absl::ZeroDuration() && now - start >= run_for) {
      if (exit_when_registered) {
        // Asked to wait for registration and bounded by --duration: not
        // getting there is a failure the caller must see.
        KOLE_LOG(Error, "Not every node was registered within --duration", "registered",
                 (*sim)->Counters().registered, "nodes", options.nodes);
        exit_code = 1;
      }
      break;
    }
  }
  if (tty) std::printf("\n");

  SimSummary summary;
  summary.counters = (*sim)->Counters();
  absl::Time end = absl::Now();
  (*sim)->Stop();
  summary.run_seconds = absl::ToDoubleSeconds(end - start);
  summary.register_seconds = (*sim)->RegisterSeconds();
  double steady_seconds = absl::ToDoubleSeconds(end - steady_start);
  if (!steady || steady_seconds < 1) {
    steady_seconds = summary.run_seconds;
    steady_before = SimCounters{};
  }
  if (steady_seconds > 0) {
    summary.heartbeats_per_second =
        static_cast<double>(summary.counters.heartbeats_sent - steady_before.heartbeats_sent) /
        steady_seconds;
    summary.messages_per_second =
        static_cast<double>(summary.counters.messages_sent - steady_before.messages_sent) /
        steady_seconds;
  }
  summary.rss_bytes = ReadRssBytes();
  if (!status_file.empty()) {
    WriteStatusFile(status_file, StatusText(summary.counters, (*sim)->AllRegistered()));
  }
  for (const std::string& line : FigureLines(summary)) std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return exit_code;
}

}  // namespace
}  // namespace kole::edge

int main(int argc, char** argv) { return kole::edge::Main(argc, argv); }

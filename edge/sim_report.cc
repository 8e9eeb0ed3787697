#include "edge/sim_report.h"

#include <fmt/format.h>

#include <cmath>

namespace kole::edge {

std::string ProgressLine(const SimCounters& now, const SimCounters& before, double seconds) {
  double dt = seconds > 0 ? seconds : 1;
  auto rate = [dt](uint64_t a, uint64_t b) { return static_cast<double>(a - b) / dt; };
  return fmt::format(
      "registered {}/{} (sent {}, retried {}) | heartbeats/s {:.0f} | messages/s {:.0f} | "
      "connections {}/{} up{}",
      now.registered, now.nodes, now.registrations_sent, now.registrations_retried,
      rate(now.heartbeats_sent, before.heartbeats_sent),
      rate(now.messages_sent, before.messages_sent), now.connections_up, now.connections,
      now.nodes_with_pod_set == 0
          ? std::string()
          : fmt::format(" | pods running {}/{} (crash-looping {})", now.pods_running,
                        now.nodes_with_pod_set, now.pods_failing));
}

std::string StatusText(const SimCounters& c, bool all_registered) {
  return fmt::format(
      "nodes={}\nconnections={}\nconnectionsUp={}\nregistered={}\naccepted={}\nrejected={}\n"
      "registrationsSent={}\nregistrationsRetried={}\nacksReceived={}\nheartbeatsSent={}\n"
      "messagesSent={}\npublishFailures={}\nresyncs={}\nrestarts={}\ndropped={}\n"
      "duplicated={}\nreordered={}\nmalformed={}\nallRegistered={}\npodSetsReceived={}\n"
      "nodesWithPodSet={}\ntemplatesReceived={}\npodsRunning={}\npodsFailing={}\n"
      "podReportsSent={}\n",
      c.nodes, c.connections, c.connections_up, c.registered, c.accepted, c.rejected,
      c.registrations_sent, c.registrations_retried, c.acks_received, c.heartbeats_sent,
      c.messages_sent, c.publish_failures, c.resyncs, c.restarts, c.dropped, c.duplicated,
      c.reordered, c.malformed, all_registered ? "true" : "false", c.pod_sets_received,
      c.nodes_with_pod_set, c.templates_received, c.pods_running, c.pods_failing,
      c.pod_reports_sent);
}

std::string FigureValue(double value) {
  if (!std::isfinite(value)) return "0";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{:.0f}", value);
  if (std::fabs(value) >= 100) return fmt::format("{:.0f}", value);
  if (std::fabs(value) >= 10) return fmt::format("{:.1f}", value);
  return fmt::format("{:.3g}", value);
}

std::string FigureLine(const std::string& name, double value, const std::string& unit) {
  return fmt::format("figure {} {} {}", name, FigureValue(value), unit);
}

std::vector<std::string> FigureLines(const SimSummary& s) {
  const SimCounters& c = s.counters;
  std::vector<std::string> lines;
  auto add = [&lines](const char* name, double value, const char* unit) {
    lines.push_back(FigureLine(name, value, unit));
  };
  add("sim.nodes", c.nodes, "nodes");
  add("sim.connections", c.connections, "connections");
  add("sim.nodes_per_connection",
      c.connections == 0 ? 0 : static_cast<double>(c.nodes) / static_cast<double>(c.connections),
      "nodes");
  add("sim.registered", c.registered, "nodes");
  if (s.register_seconds >= 0) add("sim.register_seconds", s.register_seconds, "s");
  add("sim.registrations_sent", c.registrations_sent, "messages");
  add("sim.registrations_retried", c.registrations_retried, "messages");
  add("sim.heartbeats_per_second", s.heartbeats_per_second, "1/s");
  add("sim.messages_per_second", s.messages_per_second, "1/s");
  add("sim.heartbeats_sent", c.heartbeats_sent, "messages");
  add("sim.publish_failures", c.publish_failures, "messages");
  if (c.dropped + c.duplicated + c.reordered + c.malformed + c.restarts > 0) {
    add("sim.faults_dropped", c.dropped, "messages");
    add("sim.faults_duplicated", c.duplicated, "messages");
    add("sim.faults_reordered", c.reordered, "messages");
    add("sim.faults_malformed", c.malformed, "messages");
    add("sim.faults_restarts", c.restarts, "nodes");
  }
  if (c.nodes_with_pod_set > 0) {
    add("sim.pod_sets_received", c.pod_sets_received, "sets");
    add("sim.templates_received", c.templates_received, "messages");
    add("sim.pods_running", c.pods_running, "nodes");
    add("sim.pods_failing", c.pods_failing, "nodes");
    add("sim.pod_reports_sent", c.pod_reports_sent, "reports");
  }
  add("sim.run_seconds", s.run_seconds, "s");
  if (s.rss_bytes > 0) add("sim.rss_bytes", static_cast<double>(s.rss_bytes), "B");
  return lines;
}

}  // namespace kole::edge

#pragma once

// What kole-edge-sim tells people and programs about a run: the refreshed
// progress line, the periodic plain line when stdout is no terminal, the
// status file tests poll, and the closing `figure NAME VALUE UNIT` lines in
// the form DESIGN §7 fixes for every benchmark.
//
// Pure formatting over counter snapshots; thread safety: none needed.

#include <cstdint>
#include <string>
#include <vector>

namespace kole::edge {

// A snapshot of the simulator's counters. Totals since start unless said.
struct SimCounters {
  uint64_t nodes = 0;
  uint64_t connections = 0;
  uint64_t connections_up = 0;
  uint64_t registered = 0;  // Nodes accepted at least once.
  uint64_t accepted = 0;    // Nodes whose registration is accepted now.
  uint64_t rejected = 0;    // Nodes refused for good, tombstoned or deregistered now.
  uint64_t registrations_sent = 0;
  uint64_t registrations_retried = 0;  // Sent again after a timeout or a kRetry.
  uint64_t acks_received = 0;
  uint64_t heartbeats_sent = 0;
  uint64_t messages_sent = 0;  // MQTT publishes, faults included.
  uint64_t publish_failures = 0;
  uint64_t resyncs = 0;
  uint64_t restarts = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t malformed = 0;
  uint64_t pod_sets_received = 0;   // Desired pod sets received (messages' entries).
  uint64_t nodes_with_pod_set = 0;  // Nodes that received a set at least once.
  uint64_t templates_received = 0;  // Workload templates received, over every connection.
  uint64_t pods_running = 0;        // Nodes running their (non-empty) desired set.
  uint64_t pods_failing = 0;        // ... of which crash-loop.
  uint64_t pod_reports_sent = 0;    // Pod status entries sent.
};

// One progress line: totals and the rates between two snapshots taken
// `seconds` apart.
std::string ProgressLine(const SimCounters& now, const SimCounters& before, double seconds);

// The status file: one key=value per line, stable keys, for tests and
// scripts (`accepted=200`, `allRegistered=true`, ...).
std::string StatusText(const SimCounters& counters, bool all_registered);

// One figure line: "figure sim.registered 1000000 nodes".
std::string FigureLine(const std::string& name, double value, const std::string& unit);

// The value as a figure prints it: integers whole, others with three
// significant digits or one decimal, whichever is longer.
std::string FigureValue(double value);

struct SimSummary {
  SimCounters counters;
  double run_seconds = 0;
  // Seconds from start until every node was accepted; < 0 if that never happened.
  double register_seconds = -1;
  // Heartbeats and messages per second over the steady phase (after all
  // nodes were accepted, or the whole run if they never were).
  double heartbeats_per_second = 0;
  double messages_per_second = 0;
  uint64_t rss_bytes = 0;
};

std::vector<std::string> FigureLines(const SimSummary& summary);

}  // namespace kole::edge

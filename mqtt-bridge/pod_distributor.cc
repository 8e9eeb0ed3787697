#include "mqtt-bridge/pod_distributor.h"

#include <absl/container/flat_hash_map.h>
#include <absl/time/clock.h>

#include <map>

#include "common/log.h"
#include "mqtt-bridge/bridge.h"

namespace kole::bridge {
namespace {

protocol::NodePods PodsEntry(const storage::NodePodSet& set) {
  protocol::NodePods node;
  node.node = set.node;
  if (set.revision != 0) node.pod_revision = storage::RevisionString(set.revision);
  for (const storage::DesiredPod& p : set.pods) {
    node.pods.push_back(
        {p.namespace_, p.name, p.workload, storage::RevisionString(p.revision), p.restart});
  }
  return node;
}

}  // namespace

PodDistributor::PodDistributor(PodDistributorOptions options, const protocol::TopicScheme* topics,
                               storage::PodStore* pods, Publisher* publisher,
                               std::function<uint64_t()> generation,
                               metrics::MetricsRegistry* registry)
    : options_(options),
      topics_(topics),
      pods_(pods),
      publisher_(publisher),
      generation_(std::move(generation)) {
  templates_published_ = registry->AddCounter(
      "kole_bridge_workload_templates_published_total",
      "Retained workload templates published (once per revision, again after a reconnection).");
  templates_cleared_ = registry->AddCounter(
      "kole_bridge_workload_templates_cleared_total",
      "Retained workload templates removed because no node runs their revision any more.");
  pod_messages_ = registry->AddCounter(
      "kole_bridge_messages_published_total", "Messages sent to devices, by channel.",
      {{"channel", std::string(protocol::ChannelName(protocol::Channel::kPods))}});
  pod_sets_ = registry->AddCounter("kole_bridge_pod_sets_sent_total",
                                   "Desired pod sets sent to nodes (several per gateway message).");
  failures_ = registry->AddCounter(
      "kole_bridge_publish_failures_total",
      "Messages to devices that could not be handed to the broker (devices retry).");
}

void PodDistributor::Run() {
  while (true) {
    Pass();
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.interval)) return;
  }
}

void PodDistributor::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

bool PodDistributor::Send(const std::string& topic, const std::string& payload, bool retained) {
  absl::Status status = publisher_->Publish(topic, payload, /*qos=*/1, retained);
  if (!status.ok()) {
    failures_->Add();
    KOLE_VLOG(2, "Publish to devices failed; will retry", "topic", topic, "err", status);
    return false;
  }
  return true;
}

size_t PodDistributor::Pass() {
  absl::MutexLock lock(&pass_mu_);
  PublishTemplates();
  return PublishPodSets();
}

void PodDistributor::PublishTemplates() {
  uint64_t generation = generation_();
  bool republish = generation != published_generation_;
  std::set<std::tuple<std::string, std::string, uint32_t>> wanted;
  bool all_sent = true;
  for (const storage::WorkloadTemplateInfo& t : pods_->WorkloadTemplates()) {
    auto key = std::make_tuple(t.namespace_, t.workload, t.revision);
    wanted.insert(key);
    if (!republish && retained_.contains(key)) continue;
    protocol::WorkloadTemplate message{t.namespace_, t.workload,
                                       storage::RevisionString(t.revision), t.template_json};
    std::string payload;
    protocol::EncodeWorkloadTemplate(message, payload);
    std::string topic =
        topics_->WorkloadTopic(t.namespace_, t.workload, storage::RevisionString(t.revision));
    if (!Send(topic, payload, /*retained=*/true)) {
      all_sent = false;
      continue;
    }
    templates_published_->Add();
    retained_.insert(key);
    KOLE_VLOG(2, "Workload template published", "topic", topic, "bytes", payload.size());
  }
  for (auto it = retained_.begin(); it != retained_.end();) {
    if (wanted.contains(*it)) {
      ++it;
      continue;
    }
    const auto& [ns, workload, revision] = *it;
    // An empty retained message removes the broker's copy.
    if (!Send(topics_->WorkloadTopic(ns, workload, storage::RevisionString(revision)), "", true)) {
      ++it;
      continue;
    }
    templates_cleared_->Add();
    it = retained_.erase(it);
  }
  if (all_sent) published_generation_ = generation;
}

size_t PodDistributor::SendGatewaySets(const std::string& gateway,
                                       std::span<const storage::NodePodSet* const> members,
                                       std::vector<std::string>* failed) {
  protocol::PodsMessage message;
  for (const storage::NodePodSet* set : members) message.nodes.push_back(PodsEntry(*set));
  std::string payload;
  protocol::EncodePods(message, /*on_node_topic=*/false, payload);
  // A gateway refuses a payload over the limit unread: a thousand nodes
  // with ten pods each already pass it. Halve until each part fits.
  if (payload.size() > protocol::kMaxPayloadBytes && members.size() > 1) {
    size_t half = members.size() / 2;
    return SendGatewaySets(gateway, members.first(half), failed) +
           SendGatewaySets(gateway, members.subspan(half), failed);
  }
  if (!Send(topics_->Build(protocol::Sender::kGateway, gateway, protocol::Channel::kPods), payload,
            false)) {
    for (const storage::NodePodSet* set : members) failed->push_back(set->node);
    return 0;
  }
  pod_messages_->Add();
  pod_sets_->Add(members.size());
  return members.size();
}

size_t PodDistributor::PublishPodSets() {
  size_t sent = 0;
  while (true) {
    std::vector<storage::NodePodSet> sets = pods_->TakeDirtyNodes(options_.nodes_per_pass);
    if (sets.empty()) return sent;

    // Nodes of one gateway share a message; the others get one each.
    std::map<std::string, std::vector<const storage::NodePodSet*>> by_gateway;
    std::vector<std::string> failed;
    for (const storage::NodePodSet& set : sets) {
      if (!set.gateway.empty()) {
        by_gateway[set.gateway].push_back(&set);
        continue;
      }
      protocol::PodsMessage message;
      message.nodes.push_back(PodsEntry(set));
      std::string payload;
      protocol::EncodePods(message, /*on_node_topic=*/true, payload);
      if (Send(topics_->Build(protocol::Sender::kNode, set.node, protocol::Channel::kPods), payload,
               false)) {
        pod_messages_->Add();
        pod_sets_->Add();
        ++sent;
      } else {
        failed.push_back(set.node);
      }
    }
    for (const auto& [gateway, members] : by_gateway) {
      for (size_t i = 0; i < members.size(); i += protocol::kMaxBatchNodes) {
        size_t end = std::min(members.size(), i + protocol::kMaxBatchNodes);
        sent += SendGatewaySets(
            gateway, std::span<const storage::NodePodSet* const>(members).subspan(i, end - i),
            &failed);
      }
    }
    if (!failed.empty()) {
      // Without a broker connection: try again on a later pass.
      pods_->MarkNodesDirty(failed);
      return sent;
    }
  }
}

}  // namespace kole::bridge

#pragma once

// Helpers for the storage tests that work on a real data directory: a small
// node, and store options for a test that drives maintenance itself.

#include <string>

#include "storage/node.h"
#include "storage/node_store.h"

namespace kole::storage {

inline Node SiteNode(const std::string& name) {
  Node node;
  node.name = name;
  node.labels = {{"kubernetes.io/hostname", name}, {"site", "s1"}};
  return node;
}

inline StoreOptions DataDirOptions(const std::string& dir, bool read_only = false) {
  StoreOptions options;
  options.data_dir = dir;
  options.background_maintenance = false;
  options.read_only = read_only;
  return options;
}

}  // namespace kole::storage

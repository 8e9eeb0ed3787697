#pragma once

// A fresh directory under /tmp for one test, removed with everything in it
// when the test ends.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace kole::testing {

class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix = "kole-test") {
    std::string name = "/tmp/" + prefix + "-XXXXXX";
    path_ = mkdtemp(name.data());
  }
  ~ScopedTempDir() { std::filesystem::remove_all(path_); }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside the directory (not created).
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace kole::testing

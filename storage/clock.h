#pragma once

// Time sources for the store, injectable so tests control time.
//
// Wall time is what the API shows (creation and transition timestamps).
// Monotonic time measures liveness: the grace period is counted by the
// cloud's receive time on a clock that never jumps, never by device clocks.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kole::storage {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t WallSeconds() const = 0;
  virtual int64_t MonotonicSeconds() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t WallSeconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicSeconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// The process-wide system clock.
Clock* DefaultClock();

// A clock that moves only when told. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t wall = 1'700'000'000, int64_t monotonic = 1000)
      : wall_(wall), monotonic_(monotonic) {}
  int64_t WallSeconds() const override { return wall_.load(); }
  int64_t MonotonicSeconds() const override { return monotonic_.load(); }
  void Advance(int64_t seconds) {
    wall_ += seconds;
    monotonic_ += seconds;
  }

 private:
  std::atomic<int64_t> wall_;
  std::atomic<int64_t> monotonic_;
};

}  // namespace kole::storage

#pragma once

// Rng: a small, fast, seedable pseudo-random generator (splitmix64) for the
// device-side programs. Simulated faults, jitter and restarts draw from it so
// a run is reproducible from its seed, and tests can pin every draw.
//
// Not for secrets. Thread safety: none; each thread or connection owns one.

#include <cstdint>

namespace kole::edge {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15;
    uint64_t x = state_;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9;
    x ^= x >> 27;
    x *= 0x94d049bb133111eb;
    x ^= x >> 31;
    return x;
  }

  // Uniform in [0, 1), 53 bits of precision.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // True with probability p (p <= 0: never, p >= 1: always).
  bool Chance(double p) { return p > 0 && (p >= 1 || Uniform() < p); }

  // Uniform in [0, n); 0 when n is 0.
  uint64_t Below(uint64_t n) {
    return n == 0 ? 0 : static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

}  // namespace kole::edge

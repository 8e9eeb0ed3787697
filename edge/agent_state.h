#pragma once

// The little state kole-agent keeps on the device: its boot counter (the
// protocol's epoch), in <state-dir>/state. The epoch must be ordered across
// restarts (DESIGN §4), so it is incremented and made durable before the
// agent sends anything in the new epoch: written to a temporary file,
// fsynced, renamed over the old one, and the directory fsynced, so a power
// cut leaves either the old or the new value, never neither.
//
// File format, one line: "epoch <decimal>\n".
//
// Thread safety: free functions; callers serialise writes to one directory.

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>

namespace kole::edge {

// The stored epoch; 0 when the file does not exist yet. DataLoss for a file
// that exists and cannot be parsed (the agent refuses to guess an epoch).
absl::StatusOr<uint32_t> LoadEpoch(const std::string& state_dir);

// Stores `epoch` durably as described above, creating the directory.
absl::Status SaveEpoch(const std::string& state_dir, uint32_t epoch);

// LoadEpoch + 1, saved: what an agent does at each start.
absl::StatusOr<uint32_t> NextEpoch(const std::string& state_dir);

}  // namespace kole::edge

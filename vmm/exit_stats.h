// ExitStats: how many vCPU exits touched each I/O port and each MMIO address (the boot profile's
// "exits by port/address"; tools/boot-profile prints them). One per vCPU, so the vCPU thread that
// records never waits for another; metrics() merges them. The guest picks the addresses, so the
// table is capped: past kMaxKeys distinct (kind, address) pairs, exits are only counted in
// `other`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "vmm/vcpu_exit.h"

namespace microvm::vmm {

class ExitStats {
 public:
  static constexpr std::size_t kMaxKeys = 256;

  struct Entry {
    std::size_t kind = 0;       // VcpuExit index (io_in, io_out, mmio_read, mmio_write)
    std::uint64_t address = 0;  // port or guest-physical address
    std::uint64_t count = 0;
    bool operator==(const Entry&) const = default;
  };
  struct Snapshot {
    std::vector<Entry> entries;  // most exits first; ties by kind, then address
    std::uint64_t other = 0;     // exits past the kMaxKeys cap
  };

  // Counts an I/O or MMIO exit under its port or address; other exits carry neither and are left
  // to the by-kind counters.
  void record(const VcpuExit& exit);
  [[nodiscard]] Snapshot snapshot() const;
  // Several vCPUs' snapshots as one (same cap: keys past it go to `other`).
  [[nodiscard]] static Snapshot merge(std::span<const Snapshot> parts);

 private:
  using Key = std::pair<std::size_t, std::uint64_t>;
  static void add(std::map<Key, std::uint64_t>& counts, std::uint64_t& other, Key key, std::uint64_t n);
  static Snapshot sorted(const std::map<Key, std::uint64_t>& counts, std::uint64_t other);

  mutable std::mutex mutex_;
  std::map<Key, std::uint64_t> counts_;  // under mutex_
  std::uint64_t other_ = 0;              // under mutex_
};

}  // namespace microvm::vmm

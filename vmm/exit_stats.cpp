#include "vmm/exit_stats.h"

#include <algorithm>
#include <utility>

namespace microvm::vmm {

void ExitStats::record(const VcpuExit& exit) {
  std::uint64_t address = 0;
  if (const auto* e = std::get_if<exit::IoIn>(&exit)) {
    address = e->port;
  } else if (const auto* o = std::get_if<exit::IoOut>(&exit)) {
    address = o->port;
  } else if (const auto* r = std::get_if<exit::MmioRead>(&exit)) {
    address = r->address;
  } else if (const auto* w = std::get_if<exit::MmioWrite>(&exit)) {
    address = w->address;
  } else {
    return;
  }
  std::lock_guard lock(mutex_);
  add(counts_, other_, Key{exit.index(), address}, 1);
}

void ExitStats::add(std::map<Key, std::uint64_t>& counts, std::uint64_t& other, Key key, std::uint64_t n) {
  if (auto it = counts.find(key); it != counts.end()) {
    it->second += n;
  } else if (counts.size() < kMaxKeys) {
    counts.emplace(key, n);
  } else {
    other += n;
  }
}

ExitStats::Snapshot ExitStats::sorted(const std::map<Key, std::uint64_t>& counts, std::uint64_t other) {
  Snapshot out;
  out.other = other;
  for (const auto& [key, count] : counts) out.entries.push_back(Entry{key.first, key.second, count});
  // Most exits first, ties by kind, then address: a total order, so std::sort is deterministic
  // (std::stable_sort uses libstdc++ 12's deprecated get_temporary_buffer, which Clang refuses).
  std::ranges::sort(out.entries, [](const Entry& a, const Entry& b) {
    if (a.count != b.count) return a.count > b.count;
    return std::pair(a.kind, a.address) < std::pair(b.kind, b.address);
  });
  return out;
}

ExitStats::Snapshot ExitStats::snapshot() const {
  std::lock_guard lock(mutex_);
  return sorted(counts_, other_);
}

ExitStats::Snapshot ExitStats::merge(std::span<const Snapshot> parts) {
  std::map<Key, std::uint64_t> counts;
  std::uint64_t other = 0;
  for (const Snapshot& part : parts) {
    other += part.other;
    for (const Entry& e : part.entries) add(counts, other, Key{e.kind, e.address}, e.count);
  }
  return sorted(counts, other);
}

}  // namespace microvm::vmm

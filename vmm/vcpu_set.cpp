#include "vmm/vcpu_set.h"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace microvm::vmm {

namespace {

// The signal that kicks a vCPU thread out of KVM_RUN; its handler does nothing.
int kick_signal() {
  return SIGRTMIN;
}

void install_kick_handler() {
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  ::sigaction(kick_signal(), &action, nullptr);  // no SA_RESTART: KVM_RUN returns EINTR
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

}  // namespace

VcpuSet::VcpuSet(std::vector<Vcpu> vcpus, const Bus& pio, const Bus& mmio, StopFn stop, unsigned sample_hz)
    : vcpus_(std::move(vcpus)), pio_(pio), mmio_(mmio), stop_(std::move(stop)), exit_stats_(vcpus_.size()) {
  if (sample_hz > 0) {
    // Kicks only the one thread, without immediate_exit: the vCPU leaves KVM_RUN once and goes on.
    sampler_ = std::make_unique<GuestSampler>(sample_hz, vcpus_.size(), [this](std::size_t index) {
      if (index < threads_.size()) ::pthread_kill(threads_[index].native_handle(), kick_signal());
    });
  }
}

VcpuSet::~VcpuSet() {
  join();
}

void VcpuSet::start() {
  install_kick_handler();
  for (Vcpu& vcpu : vcpus_) {
    threads_.emplace_back([this, &vcpu] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, kick_signal());
      ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      run(vcpu);
    });
  }
  if (sampler_) sampler_->start();  // after every thread exists: its kicks name them by index
}

void VcpuSet::join() {
  if (sampler_) sampler_->stop();  // no kick may name a thread once it is joined
  stopping_.store(true);
  {
    std::lock_guard lock(pause_mutex_);
    pause_cv_.notify_all();  // parked vCPUs see stopping_ and leave
  }
  kick();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void VcpuSet::kick() {
  // immediate_exit covers a thread about to enter KVM_RUN; the signal, one already inside it.
  for (Vcpu& vcpu : vcpus_) vcpu.set_immediate_exit(true);
  for (std::thread& t : threads_) ::pthread_kill(t.native_handle(), kick_signal());
}

void VcpuSet::request_pause() {
  std::lock_guard lock(pause_mutex_);
  if (pause_requested_) return;
  pause_requested_ = true;
  kick();
}

void VcpuSet::resume() {
  std::lock_guard lock(pause_mutex_);
  if (!pause_requested_) return;
  pause_requested_ = false;
  if (!stopping_.load()) {
    for (Vcpu& vcpu : vcpus_) vcpu.set_immediate_exit(false);
  }
  pause_cv_.notify_all();
}

bool VcpuSet::pause_requested() const {
  std::lock_guard lock(pause_mutex_);
  return pause_requested_;
}

bool VcpuSet::all_parked() const {
  std::lock_guard lock(pause_mutex_);
  return pause_requested_ && (parked_ == threads_.size() || stopping_.load());
}

bool VcpuSet::wait_parked(std::chrono::milliseconds timeout) {
  std::unique_lock lock(pause_mutex_);
  return pause_cv_.wait_for(lock, timeout,
                            [this] { return pause_requested_ && (parked_ == threads_.size() || stopping_.load()); });
}

void VcpuSet::park_if_paused() {
  std::unique_lock lock(pause_mutex_);
  if (!pause_requested_) return;
  ++parked_;
  pause_cv_.notify_all();
  pause_cv_.wait(lock, [this] { return !pause_requested_ || stopping_.load(); });
  --parked_;
}

VcpuSet::ExitCounts VcpuSet::exit_counts() const {
  ExitCounts counts{};
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = exit_counts_[i].load(std::memory_order_relaxed);
  return counts;
}

std::vector<GuestSample> VcpuSet::guest_samples() const {
  return sampler_ ? sampler_->samples() : std::vector<GuestSample>{};
}

ExitStats::Snapshot VcpuSet::exits_by_address() const {
  std::vector<ExitStats::Snapshot> per_vcpu;
  for (const ExitStats& stats : exit_stats_) per_vcpu.push_back(stats.snapshot());
  return ExitStats::merge(per_vcpu);
}

void VcpuSet::stop(StopReason reason, std::string detail) {
  stopping_.store(true);
  stop_(reason, std::move(detail));
}

void VcpuSet::handle_io_in(std::uint16_t port, std::span<std::uint8_t> data, std::uint32_t count) {
  const std::size_t size = count == 0 ? 0 : data.size() / count;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto element = data.subspan(i * size, size);
    if (!pio_.read(port, element)) {
      std::fill(element.begin(), element.end(), 0xff);  // floating bus
      note_unclaimed("read", port);
    }
  }
}

void VcpuSet::handle_io_out(std::uint16_t port, std::span<const std::uint8_t> data, std::uint32_t count) {
  const std::size_t size = count == 0 ? 0 : data.size() / count;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!pio_.write(port, data.subspan(i * size, size))) note_unclaimed("write", port);
  }
}

void VcpuSet::note_unclaimed(const char* access, std::uint64_t port) {
  std::lock_guard lock(unclaimed_mutex_);
  if (unclaimed_ports_.insert(port).second)
    spdlog::debug("guest {} of unclaimed I/O port {:#x} (reads as 0xff)", access, port);
}

void VcpuSet::run(Vcpu& vcpu) {
  // After an I/O or MMIO exit, KVM finishes the instruction (stores an IN's data, advances RIP) only
  // at the next KVM_RUN (api.rst 4.10 "KVM_RUN": the operation is complete, and the guest state
  // consistent, only once userspace re-entered the kernel). So a vCPU parks only with no operation
  // half done: when paused right after one, it re-enters once with immediate_exit set (request_pause
  // set it), which completes the operation and returns EINTR without running guest code. A saved
  // state is then exactly the guest's.
  bool operation_pending = false;
  while (!stopping_.load()) {
    if (!operation_pending) park_if_paused();
    if (stopping_.load()) return;
    Result<VcpuExit> result = vcpu.run();
    if (!result) {
      stop(StopReason::kError, result.error().message);
      return;
    }
    operation_pending = std::holds_alternative<exit::IoIn>(*result) || std::holds_alternative<exit::IoOut>(*result) ||
                        std::holds_alternative<exit::MmioRead>(*result) ||
                        std::holds_alternative<exit::MmioWrite>(*result);
    exit_counts_[result->index()].fetch_add(1, std::memory_order_relaxed);
    exit_stats_[vcpu.id()].record(*result);
    if (sampler_ && sampler_->due(vcpu.id())) {
      if (const Result<std::uint64_t> pc = vcpu.program_counter()) sampler_->record(vcpu.id(), *pc);
    }
    std::visit(
        Overloaded{
            [&](const exit::IoIn& e) { handle_io_in(e.port, e.data, e.count); },
            [&](const exit::IoOut& e) { handle_io_out(e.port, e.data, e.count); },
            [&](const exit::MmioRead& e) {
              if (!mmio_.read(e.address, e.data)) std::fill(e.data.begin(), e.data.end(), 0xff);
            },
            [&](const exit::MmioWrite& e) { mmio_.write(e.address, e.data); },
            [&](const exit::Hlt&) { stop(StopReason::kPowerOff, fmt::format("vCPU {} halted", vcpu.id())); },
            [&](const exit::Shutdown&) {
              stop(StopReason::kReboot,
                   fmt::format("vCPU {} triple-faulted (shutdown): the guest rebooted", vcpu.id()));
            },
            [&](const exit::SystemEvent& e) {
              if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                stop(StopReason::kPowerOff, "the guest shut down");
              else if (e.type == KVM_SYSTEM_EVENT_RESET)
                stop(StopReason::kReboot, "the guest reset");
              else
                stop(StopReason::kError, fmt::format("the guest crashed (KVM system event {})", e.type));
            },
            [&](const exit::FailEntry& e) {
              stop(StopReason::kError, fmt::format("KVM could not enter vCPU {} (hardware entry failure reason {:#x}): "
                                                   "invalid vCPU state",
                                                   vcpu.id(), e.reason));
            },
            [&](const exit::InternalError& e) {
              const Result<std::uint64_t> pc = vcpu.program_counter();
              stop(StopReason::kError,
                   fmt::format("KVM internal error on vCPU {} at guest address {:#x} (suberror {}{})", vcpu.id(),
                               pc ? *pc : 0, e.suberror,
                               e.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": instruction emulation failed" : ""));
            },
            [&](const exit::Interrupted&) {},
            [&](const exit::Unknown& e) {
              stop(StopReason::kError,
                   fmt::format("vCPU {} exited with unexpected KVM exit reason {}", vcpu.id(), e.reason));
            },
        },
        *result);
  }
}

}  // namespace microvm::vmm

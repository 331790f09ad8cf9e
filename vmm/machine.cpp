#include "vmm/machine.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>

#include "base/error.h"
#include "boot/layout.h"
#include "guest/protocol/spec.h"
#include "vmm/vm_builder.h"

namespace microvm::vmm {

namespace {

constexpr std::chrono::milliseconds kPauseTimeout{2000};  // for every vCPU to leave KVM_RUN
// At the end, how long the console may make no progress before its remaining output is dropped
// (a host that stopped reading must not keep microvm from exiting).
constexpr std::chrono::milliseconds kConsoleFlushStall{1000};
constexpr std::chrono::milliseconds kInputRetry{10};  // when the console device's input buffer is full

}  // namespace

// What the event loop serves for a running machine: stop signals, the stop eventfd and console
// input. On the heap so handlers can refer to it while start() has long returned.
struct Machine::LoopState {
  explicit LoopState(boost::asio::io_context& io) : signals(io, SIGINT, SIGTERM, SIGHUP), retry(io) {}

  boost::asio::signal_set signals;
  std::function<void()> wait_for_signal;
  std::optional<boost::asio::posix::stream_descriptor> stop_event;
  std::optional<boost::asio::posix::stream_descriptor> input;
  boost::asio::steady_timer retry;
  std::array<std::uint8_t, 1024> buffer{};
  std::span<const std::uint8_t> pending;
  std::function<void()> read_input;
  std::function<void()> deliver;
  int input_flags = -1;
};

Result<std::unique_ptr<Machine>> Machine::create(const VmResources& resources, const MachineEnvironment& env,
                                                 boost::asio::io_context& io) {
  return VmBuilder::build(resources, env, io);
}

Result<std::unique_ptr<Machine>> Machine::restore(const SnapshotLoad& load, const MachineEnvironment& env,
                                                  boost::asio::io_context& io) {
  return VmBuilder::restore(load, env, io);
}

Machine::Machine(Key /*only VmBuilder has one*/, const VmResources& resources, const MachineEnvironment& env,
                 boost::asio::io_context& io, Kvm kvm, Vm vm, GuestMemory memory)
    : resources_(resources),
      env_(env),
      io_(io),
      kvm_(std::move(kvm)),
      vm_(std::move(vm)),
      memory_(std::move(memory)),
      console_(env.console_output),
      serial_irq_(vm_, boot::layout::kIrqCom1),
      serial_(serial_irq_, [this](std::span<const std::uint8_t> bytes) { console_.write(bytes); }),
      i8042_([this] { stop(StopReason::kReboot, "the guest reset the machine (i8042)"); }),
      acpi_pm_([this] { stop(StopReason::kPowerOff, "the guest powered off (ACPI S5)"); }),
      status_port_([this](devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when) {
        on_status(event, payload, when);
      }) {}

Machine::~Machine() {
  if (vcpus_) vcpus_->join();
}

void Machine::set_status_listener(StatusListener listener) {
  status_listener_ = std::move(listener);
}

void Machine::set_signal_handler(SignalHandler handler) {
  signal_handler_ = std::move(handler);
}

std::size_t Machine::deliver_input(std::span<const std::uint8_t> bytes) {
  return virtio_console_ != nullptr ? virtio_console_->enqueue_input(bytes) : serial_.enqueue_input(bytes);
}

void Machine::on_status(devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when) {
  if (status_listener_) status_listener_(event, payload, when);
}

void Machine::stop(StopReason reason, std::string detail, int signal) {
  {
    std::lock_guard lock(exit_mutex_);
    if (!exit_) exit_ = MachineExit{reason, std::move(detail), signal, {}};
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_event_.get(), &one, sizeof(one));
}

void Machine::start() {
  {
    std::lock_guard lock(exit_mutex_);
    vcpus_started_ = std::chrono::steady_clock::now();
  }
  vcpus_->start();

  loop_ = std::make_unique<LoopState>(io_);
  LoopState& s = *loop_;
  // A stop signal ends the VM at once unless a handler (the container supervisor) says otherwise.
  s.wait_for_signal = [this, &s] {
    s.signals.async_wait([this, &s](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      if (signal_handler_) {
        signal_handler_(signal);
      } else {
        stop(StopReason::kSignal, fmt::format("stopped by signal {}", signal), signal);
      }
      s.wait_for_signal();
    });
  };
  s.wait_for_signal();

  s.stop_event.emplace(io_, ::dup(stop_event_.get()));
  s.stop_event->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (!ec) io_.stop();
                           });

  // Console input: host bytes go to the console device; when its buffer is full, retry shortly.
  s.deliver = [this, &s] {
    s.pending = s.pending.subspan(deliver_input(s.pending));
    if (s.pending.empty()) {
      s.read_input();
      return;
    }
    s.retry.expires_after(kInputRetry);
    s.retry.async_wait([&s](const boost::system::error_code& ec) {
      if (!ec) s.deliver();
    });
  };
  s.read_input = [&s] {
    s.input->async_read_some(boost::asio::buffer(s.buffer), [&s](const boost::system::error_code& ec, std::size_t n) {
      if (ec) return;  // EOF or error: the guest simply gets no more input
      s.pending = std::span<const std::uint8_t>(s.buffer.data(), n);
      s.deliver();
    });
  };
  // The event loop makes the input's open file description non-blocking, which the shell that
  // started microvm shares: put its flags back afterwards.
  s.input_flags = env_.console_input >= 0 ? ::fcntl(env_.console_input, F_GETFL) : -1;
  if (env_.console_input >= 0) {
    UniqueFd input_fd(::dup(env_.console_input));
    boost::system::error_code ec;
    s.input.emplace(io_);
    if (s.input->assign(input_fd.get(), ec); ec) {
      spdlog::debug("console input is not pollable ({}); the guest gets no input", ec.message());
      s.input.reset();
    } else {
      static_cast<void>(input_fd.release());  // now owned by the stream descriptor
      s.read_input();
    }
  }
  std::lock_guard lock(exit_mutex_);
  if (exit_) io_.stop();  // the guest may have ended before the loop was set up
}

MachineExit Machine::finish() {
  if (loop_) {
    loop_->input.reset();
    if (loop_->input_flags >= 0) ::fcntl(env_.console_input, F_SETFL, loop_->input_flags);
    loop_.reset();
  }
  vcpus_->join();
  if (!console_.flush(kConsoleFlushStall)) {
    spdlog::debug("the console's reader stopped reading: its last output is dropped");
  }
  std::lock_guard lock(exit_mutex_);
  MachineExit result = exit_.value_or(MachineExit{StopReason::kError, "the VM stopped for no recorded reason", 0, {}});
  result.last_console_lines = console_.last_lines();
  return result;
}

MachineExit Machine::run() {
  start();
  io_.run();
  return finish();
}

Result<void> Machine::pause() {
  if (vcpus_->pause_requested()) return {};
  vcpus_->request_pause();
  // vCPUs leave KVM_RUN within microseconds of the kick; one that does not is stuck in a device.
  if (!vcpus_->wait_parked(kPauseTimeout)) {
    vcpus_->resume();
    return fail_kind(ErrorKind::kInternal, "the vCPUs did not pause within {} ms", kPauseTimeout.count());
  }
  spdlog::debug("paused {} vCPU(s)", vcpus_->size());
  return {};
}

void Machine::resume() {
  vcpus_->resume();
}

bool Machine::paused() const {
  return vcpus_->pause_requested();
}

Result<void> Machine::begin_run(const VmResources& run) {
  if (!resources_.warm_template) return fail_state("this VM is not a warm-start template: it has its container");
  if (loop_ && !paused()) return fail_state("a template gets its run only while it is paused");
  if (!run.container_mode() || run.warm_template) return fail("a warm start needs a container (-- CMD) to run");
  const VmResources& t = resources_;
  if (run.machine_config != t.machine_config || run.boot_source.kernel_image_path != t.boot_source.kernel_image_path ||
      run.console != t.console) {
    return fail("the template has another machine, kernel or console than this run");
  }
  const std::vector<DriveConfig> template_drives = t.drives_in_guest_order();
  const std::vector<DriveConfig> run_drives = run.drives_in_guest_order();
  if (run_drives.size() != template_drives.size() || run_drives.size() != drives_.size()) {
    return fail("the template has {} drive(s), this run {}", template_drives.size(), run_drives.size());
  }
  for (std::size_t i = 0; i < run_drives.size(); ++i) {
    const DriveConfig& a = template_drives[i];
    const DriveConfig& b = run_drives[i];
    if (a.drive_id != b.drive_id || a.is_root_device != b.is_root_device || a.is_read_only != b.is_read_only) {
      return fail("drive {} of this run ({}) is not the template's ({})", i, b.drive_id, a.drive_id);
    }
  }
  if (run.network_interfaces.size() != t.network_interfaces.size()) {
    return fail("the template has {} network interface(s), this run {}", t.network_interfaces.size(),
                run.network_interfaces.size());
  }
  for (std::size_t i = 0; i < run.network_interfaces.size(); ++i) {
    const NetworkInterfaceConfig& a = t.network_interfaces[i];
    const NetworkInterfaceConfig& b = run.network_interfaces[i];
    if (a.iface_id != b.iface_id || a.guest_mac != b.guest_mac || a.host_dev_name != b.host_dev_name) {
      return fail("network interface {} of this run ({}) is not the template's ({})", i, b.iface_id, a.iface_id);
    }
  }
  guest::Spec spec = TRY(run.container_spec());
  // The template's clock stopped when it was saved: the init sets the host's (guest/protocol/spec.h).
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  spec.realtime_ns =
      static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
  // The images before the spec: the init waits for the root drive's capacity once it has the spec.
  for (std::size_t i = 0; i < drives_.size(); ++i) {
    TRY_VOID(drives_[i]->attach(run_drives[i].path_on_host));
  }
  status_port_.set_spec(guest::spec_to_json(spec));
  resources_ = run;
  return {};
}

MachineMetrics Machine::metrics() const {
  MachineMetrics m;
  m.exits = vcpus_->exit_counts();
  m.exits_by_address = vcpus_->exits_by_address();
  const std::vector<DriveConfig> drives = resources_.drives_in_guest_order();
  for (std::size_t i = 0; i < drives_.size(); ++i) m.drives.push_back({drives[i].drive_id, drives_[i]->stats()});
  for (std::size_t i = 0; i < nets_.size(); ++i) {
    m.nets.push_back({resources_.network_interfaces[i].iface_id, nets_[i]->stats()});
  }
  m.console = console_.stats();
  m.guest_sample_hz = vcpus_->guest_sample_hz();
  m.guest_samples = vcpus_->guest_samples();
  m.guest_samples_dropped = vcpus_->guest_samples_dropped();
  m.markers = setup_markers_;
  std::lock_guard lock(exit_mutex_);
  m.markers.vcpus_started = vcpus_started_;
  return m;
}

}  // namespace microvm::vmm

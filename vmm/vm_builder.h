// The VM builder (Firecracker's builder.rs): turns the one configuration, VmResources, into a
// Machine. Everything that needs no KVM comes first — sizes, drives, TAPs, the kernel and initrd
// loaded into guest memory — so a bad path or size is reported on any host; then the KVM VM, its
// memory slots, irqchip and PIT, the platform devices on their buses, the virtio devices with their
// ioeventfds and irqfds, and the vCPUs with their CPUID, MSRs and boot registers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "base/result.h"
#include "boot/linux_boot.h"
#include "vmm/machine.h"

namespace microvm::vmm {

class VmBuilder {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Machine>> build(const VmResources& resources,
                                                              const MachineEnvironment& env,
                                                              boost::asio::io_context& io);
  // A machine from a snapshot (vmm/snapshot/machine_snapshot.cpp): the VmResources, devices, vCPUs
  // and VM state of the state file, guest RAM mapped from the memory file. Its vCPUs are paused.
  [[nodiscard]] static Result<std::unique_ptr<Machine>> restore(const SnapshotLoad& load, const MachineEnvironment& env,
                                                                boost::asio::io_context& io);

 private:
  // What build() opens on the host before it touches KVM (so a bad path is reported first).
  struct HostResources {
    std::vector<std::unique_ptr<devices::virtio::BlockDevice>> drives;
    std::vector<devices::virtio::Tap> taps;
  };
  [[nodiscard]] static std::size_t virtio_device_count(const VmResources& resources);
  [[nodiscard]] static Result<HostResources> open_host(const VmResources& resources, boost::asio::io_context& io);
  // The KVM VM, its memory slots and devices, the vCPUs; `boot_cpu` null for a restore (whose
  // vCPUs get their whole state from the snapshot), else the boot vCPU's registers.
  [[nodiscard]] static Result<void> wire(Machine& machine, const boot::BootCpuState* boot_cpu, HostResources host);
  [[nodiscard]] static Result<void> add_virtio(Machine& machine, std::unique_ptr<devices::virtio::VirtioDevice> device,
                                               std::string_view name);
};

}  // namespace microvm::vmm

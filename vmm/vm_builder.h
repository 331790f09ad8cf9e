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

 private:
  // What build() opens on the host before it touches KVM (so a bad path is reported first).
  struct HostResources {
    std::vector<std::unique_ptr<devices::virtio::BlockDevice>> drives;
    std::vector<devices::virtio::Tap> taps;
  };
  [[nodiscard]] static Result<void> wire(Machine& machine, const boot::LinuxBootInfo& boot_info, HostResources host);
  [[nodiscard]] static Result<void> add_virtio(Machine& machine, std::unique_ptr<devices::virtio::VirtioDevice> device,
                                               std::string_view name);
};

}  // namespace microvm::vmm

#include "vmm/vm.h"

#include <sys/ioctl.h>

#include "vmm/kvm_abi.h"
#include "vmm/kvm_ioctl.h"

namespace microvm::vmm {

using detail::check;

Result<void> Vm::set_user_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size, void* host) const {
  // `host` is a live mapping of `size` bytes owned by GuestMemory, which outlives the Vm.
  kvm_userspace_memory_region region{slot, 0, guest.value, size, reinterpret_cast<std::uint64_t>(host)};
  return check(::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
}

Result<void> Vm::set_tss_address(GuestAddress address) const {
  // The address is passed by value (api.rst 4.43).
  return check(::ioctl(fd_.get(), KVM_SET_TSS_ADDR, address.value), "KVM_SET_TSS_ADDR");
}

Result<void> Vm::set_identity_map_address(GuestAddress address) const {
  std::uint64_t value = address.value;
  // KVM reads one u64 guest address from `value` (api.rst 4.87).
  return check(::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &value), "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<void> Vm::create_irqchip() const {
  // No argument: the PIC, IOAPIC and local APICs are created inside KVM (api.rst 4.24).
  return check(::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

Result<void> Vm::create_pit() const {
  // The dummy speaker port (0x61) keeps PIT channel 2 calibration loops inside the kernel.
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  return check(::ioctl(fd_.get(), KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
}

Result<void> Vm::set_irq_line(std::uint32_t irq, bool level) const {
  kvm_irq_level irq_level{};
  irq_level.irq = irq;
  irq_level.level = level ? 1 : 0;
  // KVM reads one struct kvm_irq_level (api.rst 4.25).
  return check(::ioctl(fd_.get(), KVM_IRQ_LINE, &irq_level), "KVM_IRQ_LINE");
}

Result<void> Vm::register_ioeventfd(GuestAddress address, std::uint32_t len, std::uint64_t datamatch,
                                    int eventfd) const {
  kvm_ioeventfd request{};
  request.datamatch = datamatch;
  request.addr = address.value;
  request.len = len;
  request.fd = eventfd;
  request.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;  // MMIO (no PIO flag), one eventfd per written value
  // KVM reads one struct kvm_ioeventfd and keeps its own reference to the eventfd (api.rst 4.59).
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) < 0) {
    return fail_kvm("KVM_IOEVENTFD at {:#x} failed: {}", address.value, errno_text(errno));
  }
  return {};
}

Result<void> Vm::register_irqfd(int eventfd, std::uint32_t gsi) const {
  kvm_irqfd request{};
  request.fd = static_cast<std::uint32_t>(eventfd);
  request.gsi = gsi;
  // KVM reads one struct kvm_irqfd and keeps its own reference to the eventfd (api.rst 4.75).
  if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0)
    return fail_kvm("KVM_IRQFD for GSI {} failed: {}", gsi, errno_text(errno));
  return {};
}

int Vm::check_extension(long capability) const {
  // KVM_CHECK_EXTENSION takes the capability number by value.
  return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

std::size_t Vm::xsave_size() const {
  const int size = check_extension(KVM_CAP_XSAVE2);
  return size > static_cast<int>(sizeof(abi::XsaveRegion)) ? static_cast<std::size_t>(size) : sizeof(abi::XsaveRegion);
}

Result<kvm_irqchip> Vm::get_irqchip(std::uint32_t chip) const {
  kvm_irqchip state{};
  state.chip_id = chip;
  // KVM reads chip_id and writes that chip's state into the same struct kvm_irqchip (api.rst 4.26).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_IRQCHIP, &state), "KVM_GET_IRQCHIP"));
  return state;
}

Result<void> Vm::set_irqchip(const kvm_irqchip& state) const {
  // KVM reads one struct kvm_irqchip and checks its chip_id (api.rst 4.27).
  return check(::ioctl(fd_.get(), KVM_SET_IRQCHIP, &state), "KVM_SET_IRQCHIP");
}

Result<kvm_pit_state2> Vm::get_pit2() const {
  kvm_pit_state2 state{};
  // KVM writes one struct kvm_pit_state2 (api.rst 4.72).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_PIT2, &state), "KVM_GET_PIT2"));
  return state;
}

Result<void> Vm::set_pit2(const kvm_pit_state2& state) const {
  // KVM reads one struct kvm_pit_state2 (api.rst 4.73).
  return check(::ioctl(fd_.get(), KVM_SET_PIT2, &state), "KVM_SET_PIT2");
}

Result<kvm_clock_data> Vm::get_clock() const {
  kvm_clock_data clock{};
  // KVM writes one struct kvm_clock_data (api.rst 4.29).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_CLOCK, &clock), "KVM_GET_CLOCK"));
  return clock;
}

Result<void> Vm::set_clock(std::uint64_t value) const {
  kvm_clock_data clock{};  // flags 0 (no KVM_CLOCK_REALTIME), padding zero
  clock.clock = value;
  // KVM reads one struct kvm_clock_data (api.rst 4.30).
  return check(::ioctl(fd_.get(), KVM_SET_CLOCK, &clock), "KVM_SET_CLOCK");
}

Result<Vcpu> Vm::create_vcpu(unsigned id, std::size_t mmap_size) const {
  // The vCPU id is passed by value; KVM returns a new fd that we own (api.rst 4.7).
  const int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) return fail_kvm("KVM_CREATE_VCPU {} failed: {}", id, errno_text(errno));
  UniqueFd vcpu_fd(fd);
  Mapping run = TRY(Mapping::shared(vcpu_fd.get(), mmap_size));
  return Vcpu(id, std::move(vcpu_fd), std::move(run));
}

}  // namespace microvm::vmm

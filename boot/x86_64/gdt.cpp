#include "boot/x86_64/gdt.h"

#include <array>

#include "boot/layout.h"

namespace microvm::boot {

namespace {
constexpr std::uint16_t kCode64Flags = 0xa09b;  // G, L, P, DPL 0, S, type 0xb (execute/read, accessed)
constexpr std::uint16_t kData32Flags = 0xc093;  // G, D/B, P, DPL 0, S, type 0x3 (read/write, accessed)
constexpr std::uint16_t kTssFlags = 0x808b;     // G, P, type 0xb (busy 32/64-bit TSS)
constexpr std::uint32_t kFlatLimit = 0xfffff;   // 4 GiB with 4 KiB granularity
static_assert(layout::kGdt.value + kGdtEntries * 8 <= layout::kIdt.value, "GDT overruns the IDT");
}  // namespace

Segment decode_segment(std::uint64_t entry, std::uint16_t selector) {
  Segment s;
  s.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
  const auto raw_limit = static_cast<std::uint32_t>((entry & 0xffff) | (((entry >> 48) & 0xf) << 16));
  s.g = ((entry >> 55) & 1) != 0;
  s.limit = s.g ? (raw_limit << 12) | 0xfff : raw_limit;
  s.selector = selector;
  s.type = static_cast<std::uint8_t>((entry >> 40) & 0xf);
  s.s = ((entry >> 44) & 1) != 0;
  s.dpl = static_cast<std::uint8_t>((entry >> 45) & 3);
  s.present = ((entry >> 47) & 1) != 0;
  s.avl = ((entry >> 52) & 1) != 0;
  s.l = ((entry >> 53) & 1) != 0;
  s.db = ((entry >> 54) & 1) != 0;
  return s;
}

Result<BootSegments> write_boot_gdt(const GuestMemory& memory) {
  std::array<std::uint64_t, kGdtEntries> gdt{};
  gdt[kBootCsSelector / 8] = gdt_entry(kCode64Flags, 0, kFlatLimit);
  gdt[kBootDsSelector / 8] = gdt_entry(kData32Flags, 0, kFlatLimit);
  gdt[kBootTssSelector / 8] = gdt_entry(kTssFlags, 0, kFlatLimit);
  TRY_VOID(memory.write_obj(layout::kGdt, gdt));
  TRY_VOID(memory.write_obj(layout::kIdt, std::uint64_t{0}));

  BootSegments out;
  out.code = decode_segment(gdt[kBootCsSelector / 8], kBootCsSelector);
  out.data = decode_segment(gdt[kBootDsSelector / 8], kBootDsSelector);
  out.tss = decode_segment(gdt[kBootTssSelector / 8], kBootTssSelector);
  out.gdt_base = layout::kGdt;
  out.gdt_limit = static_cast<std::uint16_t>(sizeof(gdt) - 1);
  out.idt_base = layout::kIdt;
  out.idt_limit = 7;  // one (empty) 8-byte entry
  return out;
}

}  // namespace microvm::boot

#include "boot/x86_64/acpi.h"

#include <cstring>
#include <numeric>
#include <string_view>

#include "boot/layout.h"

namespace microvm::boot {

namespace {

#pragma pack(push, 1)
struct AcpiHeader {                // ACPI 6.4 §5.2.6 "System Description Table Header"
  char signature[4];               // 0
  std::uint32_t length;            // 4
  std::uint8_t revision;           // 8
  std::uint8_t checksum;           // 9
  char oem_id[6];                  // 10
  char oem_table_id[8];            // 16
  std::uint32_t oem_revision;      // 24
  char creator_id[4];              // 28
  std::uint32_t creator_revision;  // 32
};
static_assert(sizeof(AcpiHeader) == 36);

struct Rsdp {                      // ACPI 6.4 §5.2.5.3
  char signature[8];               // 0: "RSD PTR "
  std::uint8_t checksum;           // 8: over the first 20 bytes
  char oem_id[6];                  // 9
  std::uint8_t revision;           // 15: 2 = ACPI 2.0+ (has the XSDT)
  std::uint32_t rsdt_address;      // 16
  std::uint32_t length;            // 20
  std::uint64_t xsdt_address;      // 24
  std::uint8_t extended_checksum;  // 32: over all 36 bytes
  std::uint8_t reserved[3];        // 33
};
static_assert(sizeof(Rsdp) == 36);

struct Gas {                 // ACPI 6.4 §5.2.3.2 Generic Address Structure
  std::uint8_t space_id;     // 0: 1 = System I/O
  std::uint8_t bit_width;    // 1
  std::uint8_t bit_offset;   // 2
  std::uint8_t access_size;  // 3: 1 = byte
  std::uint64_t address;     // 4
};
static_assert(sizeof(Gas) == 12);

struct Fadt {                            // ACPI 6.4 §5.2.9, Table 5.9
  AcpiHeader header;                     // 0
  std::uint32_t firmware_ctrl;           // 36
  std::uint32_t dsdt;                    // 40
  std::uint8_t reserved0;                // 44
  std::uint8_t preferred_pm_profile;     // 45
  std::uint16_t sci_int;                 // 46
  std::uint32_t smi_cmd;                 // 48: 0 = always in ACPI mode
  std::uint8_t acpi_enable;              // 52
  std::uint8_t acpi_disable;             // 53
  std::uint8_t s4bios_req;               // 54
  std::uint8_t pstate_cnt;               // 55
  std::uint32_t pm1a_evt_blk;            // 56
  std::uint32_t pm1b_evt_blk;            // 60
  std::uint32_t pm1a_cnt_blk;            // 64
  std::uint32_t pm1b_cnt_blk;            // 68
  std::uint32_t pm2_cnt_blk;             // 72
  std::uint32_t pm_tmr_blk;              // 76: 0 = no PM timer (optional since ACPI 5.0A)
  std::uint32_t gpe0_blk;                // 80
  std::uint32_t gpe1_blk;                // 84
  std::uint8_t pm1_evt_len;              // 88
  std::uint8_t pm1_cnt_len;              // 89
  std::uint8_t legacy_fields[109 - 90];  // 90..108: PM2_CNT_LEN .. CENTURY (unused)
  std::uint16_t iapc_boot_arch;          // 109
  std::uint8_t reserved1;                // 111
  std::uint32_t flags;                   // 112
  Gas reset_reg;                         // 116
  std::uint8_t reset_value;              // 128
  std::uint16_t arm_boot_arch;           // 129
  std::uint8_t minor_version;            // 131
  std::uint64_t x_firmware_ctrl;         // 132
  std::uint64_t x_dsdt;                  // 140
  Gas x_legacy_blocks[8];                // 148..243: X_PM1a_EVT_BLK .. X_GPE1_BLK (unused)
  Gas sleep_control;                     // 244
  Gas sleep_status;                      // 256
  std::uint64_t hypervisor_vendor;       // 268
};
static_assert(sizeof(Fadt) == 276);
static_assert(offsetof(Fadt, pm1a_evt_blk) == 56);
static_assert(offsetof(Fadt, pm1_evt_len) == 88);
static_assert(offsetof(Fadt, iapc_boot_arch) == 109);
static_assert(offsetof(Fadt, flags) == 112);
static_assert(offsetof(Fadt, x_dsdt) == 140);
static_assert(offsetof(Fadt, sleep_control) == 244);

struct MadtHeader {                  // ACPI 6.4 §5.2.12
  AcpiHeader header;                 // 0
  std::uint32_t local_apic_address;  // 36
  std::uint32_t flags;               // 40: bit 0 PCAT_COMPAT (dual 8259s present)
};
static_assert(sizeof(MadtHeader) == 44);

struct MadtLocalApic {  // ACPI 6.4 §5.2.12.2, type 0
  std::uint8_t type;
  std::uint8_t length;
  std::uint8_t processor_uid;
  std::uint8_t apic_id;
  std::uint32_t flags;  // bit 0: enabled
};
static_assert(sizeof(MadtLocalApic) == 8);

struct MadtIoApic {  // ACPI 6.4 §5.2.12.3, type 1
  std::uint8_t type;
  std::uint8_t length;
  std::uint8_t io_apic_id;
  std::uint8_t reserved;
  std::uint32_t address;
  std::uint32_t gsi_base;
};
static_assert(sizeof(MadtIoApic) == 12);
#pragma pack(pop)

constexpr std::uint8_t kFadtRevision = 6;
constexpr std::uint8_t kFadtMinorVersion = 4;          // ACPI 6.4
constexpr std::uint32_t kFadtWbinvd = 1U << 0;         // WBINVD works
constexpr std::uint32_t kFadtProcC1 = 1U << 2;         // C1 (HLT) on all processors
constexpr std::uint32_t kFadtPowerButton = 1U << 4;    // PWR_BUTTON: no fixed power button
constexpr std::uint32_t kFadtSleepButton = 1U << 5;    // SLP_BUTTON: no fixed sleep button
constexpr std::uint16_t kBootArchNoVga = 1U << 2;      // IAPC_BOOT_ARCH: VGA not present
constexpr std::uint16_t kBootArchNoCmosRtc = 1U << 5;  // IAPC_BOOT_ARCH: CMOS RTC not present
constexpr std::uint8_t kMadtRevision = 5;
constexpr std::uint32_t kMadtPcatCompat = 1;
constexpr std::uint8_t kMadtTypeLocalApic = 0;
constexpr std::uint8_t kMadtTypeIoApic = 1;
constexpr std::uint8_t kDsdtRevision = 2;
constexpr std::uint8_t kXsdtRevision = 1;
constexpr std::size_t kTableAlign = 16;  // Linux scans for the RSDP on 16-byte boundaries

// AML for: Name (\_S5, Package (1) { 5 })  (ACPI 6.4 §20.2: NameOp, PackageOp, BytePrefix)
constexpr std::uint8_t kDsdtS5Aml[] = {0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x01, 0x0a, kAcpiSleepTypeS5};

std::uint8_t checksum(std::span<const std::byte> bytes) {
  unsigned sum = std::accumulate(bytes.begin(), bytes.end(), 0U,
                                 [](unsigned acc, std::byte b) { return acc + std::to_integer<unsigned>(b); });
  return static_cast<std::uint8_t>(0x100 - (sum & 0xff));
}

void copy_text(char* dest, std::string_view text, std::size_t size) {
  std::memset(dest, ' ', size);
  std::memcpy(dest, text.data(), std::min(size, text.size()));
}

AcpiHeader make_header(std::string_view signature, std::uint32_t length, std::uint8_t revision) {
  AcpiHeader h{};
  copy_text(h.signature, signature, sizeof(h.signature));
  h.length = length;
  h.revision = revision;
  copy_text(h.oem_id, "MICROV", sizeof(h.oem_id));
  copy_text(h.oem_table_id, "MICROVM", sizeof(h.oem_table_id));
  h.oem_revision = 1;
  copy_text(h.creator_id, "MVMM", sizeof(h.creator_id));
  h.creator_revision = 1;
  return h;
}

// Appends a table to the blob, fixes its checksum, returns its guest address.
class Blob {
 public:
  explicit Blob(GuestAddress base) : base_(base) {}

  std::uint64_t append(std::span<const std::byte> table, bool checksummed = true) {
    bytes_.resize((bytes_.size() + kTableAlign - 1) / kTableAlign * kTableAlign);
    const std::size_t offset = bytes_.size();
    bytes_.insert(bytes_.end(), table.begin(), table.end());
    if (checksummed) {
      auto placed = std::span(bytes_).subspan(offset, table.size());
      placed[offsetof(AcpiHeader, checksum)] = std::byte{checksum(placed)};
    }
    return base_.value + offset;
  }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  GuestAddress base_;
  std::vector<std::byte> bytes_;
};

template <typename T>
std::span<const std::byte> as_bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

}  // namespace

std::vector<std::byte> build_acpi_tables(GuestAddress base, unsigned vcpus) {
  Blob blob(base);
  // The RSDP goes first, at `base`; its XSDT pointer is patched once the XSDT's place is known.
  Rsdp rsdp{};
  std::memcpy(rsdp.signature, "RSD PTR ", sizeof(rsdp.signature));
  copy_text(rsdp.oem_id, "MICROV", sizeof(rsdp.oem_id));
  rsdp.revision = 2;
  rsdp.length = sizeof(Rsdp);
  blob.append(as_bytes_of(rsdp), false);

  // DSDT: the header plus \_S5.
  std::vector<std::byte> dsdt(sizeof(AcpiHeader) + sizeof(kDsdtS5Aml));
  const AcpiHeader dsdt_header = make_header("DSDT", static_cast<std::uint32_t>(dsdt.size()), kDsdtRevision);
  std::memcpy(dsdt.data(), &dsdt_header, sizeof(dsdt_header));
  std::memcpy(dsdt.data() + sizeof(AcpiHeader), kDsdtS5Aml, sizeof(kDsdtS5Aml));
  const std::uint64_t dsdt_address = blob.append(dsdt);

  Fadt fadt{};
  fadt.header = make_header("FACP", sizeof(Fadt), kFadtRevision);
  fadt.dsdt = static_cast<std::uint32_t>(dsdt_address);
  fadt.x_dsdt = dsdt_address;
  fadt.sci_int = layout::kIrqAcpiSci;
  fadt.pm1a_evt_blk = layout::kPortAcpiPm1Event;
  fadt.pm1_evt_len = 4;
  fadt.pm1a_cnt_blk = layout::kPortAcpiPm1Control;
  fadt.pm1_cnt_len = 2;
  fadt.flags = kFadtWbinvd | kFadtProcC1 | kFadtPowerButton | kFadtSleepButton;
  fadt.iapc_boot_arch = kBootArchNoVga | kBootArchNoCmosRtc;  // and no 8042 bit: Linux skips probing it
  fadt.minor_version = kFadtMinorVersion;
  std::memcpy(&fadt.hypervisor_vendor, "MICROVM\0", sizeof(fadt.hypervisor_vendor));
  const std::uint64_t fadt_address = blob.append(as_bytes_of(fadt));

  std::vector<std::byte> madt(sizeof(MadtHeader) + vcpus * sizeof(MadtLocalApic) + sizeof(MadtIoApic));
  MadtHeader madt_header{make_header("APIC", static_cast<std::uint32_t>(madt.size()), kMadtRevision),
                         static_cast<std::uint32_t>(layout::kLocalApic.value), kMadtPcatCompat};
  std::memcpy(madt.data(), &madt_header, sizeof(madt_header));
  std::size_t at = sizeof(MadtHeader);
  for (unsigned cpu = 0; cpu < vcpus; ++cpu) {
    const MadtLocalApic lapic{kMadtTypeLocalApic, sizeof(MadtLocalApic), static_cast<std::uint8_t>(cpu),
                              static_cast<std::uint8_t>(cpu), 1};
    std::memcpy(madt.data() + at, &lapic, sizeof(lapic));
    at += sizeof(lapic);
  }
  const MadtIoApic ioapic{
      kMadtTypeIoApic, sizeof(MadtIoApic), 0, 0, static_cast<std::uint32_t>(layout::kIoApic.value), 0};
  std::memcpy(madt.data() + at, &ioapic, sizeof(ioapic));
  const std::uint64_t madt_address = blob.append(madt);

  std::vector<std::byte> xsdt(sizeof(AcpiHeader) + 2 * sizeof(std::uint64_t));
  const AcpiHeader xsdt_header = make_header("XSDT", static_cast<std::uint32_t>(xsdt.size()), kXsdtRevision);
  std::memcpy(xsdt.data(), &xsdt_header, sizeof(xsdt_header));
  std::memcpy(xsdt.data() + sizeof(AcpiHeader), &fadt_address, sizeof(std::uint64_t));
  std::memcpy(xsdt.data() + sizeof(AcpiHeader) + sizeof(std::uint64_t), &madt_address, sizeof(std::uint64_t));
  const std::uint64_t xsdt_address = blob.append(xsdt);

  std::vector<std::byte> bytes = blob.take();
  rsdp.xsdt_address = xsdt_address;
  std::memcpy(bytes.data(), &rsdp, sizeof(rsdp));
  auto placed = std::span(bytes).first(sizeof(Rsdp));
  placed[offsetof(Rsdp, checksum)] = std::byte{checksum(placed.first(20))};
  placed[offsetof(Rsdp, extended_checksum)] = std::byte{checksum(placed)};
  return bytes;
}

Result<GuestAddress> write_acpi_tables(const GuestMemory& memory, unsigned vcpus) {
  const std::vector<std::byte> tables = build_acpi_tables(layout::kAcpiTables, vcpus);
  if (tables.size() > layout::kAcpiReserved) return fail("ACPI tables for {} vCPUs do not fit their area", vcpus);
  TRY_VOID(memory.write(layout::kAcpiTables, tables));
  return layout::kAcpiTables;
}

}  // namespace microvm::boot

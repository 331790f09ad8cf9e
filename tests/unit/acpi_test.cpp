// ACPI tables (ACPI 6.4 chapter 5), parsed from the bytes the way an OS finds them:
// RSDP -> XSDT -> {FADT -> DSDT, MADT}, with every checksum and the fields Linux relies on.
#include "boot/x86_64/acpi.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "boot/layout.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::load;

// Field offsets, from the ACPI 6.4 spec (independent of the structs in acpi.cpp).
constexpr std::size_t kHeaderSize = 36;
constexpr std::size_t kHeaderLength = 4;
constexpr std::size_t kRsdpSize = 36;
constexpr std::size_t kRsdpRevision = 15;
constexpr std::size_t kRsdpLength = 20;
constexpr std::size_t kRsdpXsdt = 24;
constexpr std::size_t kFadtDsdt = 40;
constexpr std::size_t kFadtSciInt = 46;
constexpr std::size_t kFadtSmiCmd = 48;
constexpr std::size_t kFadtPm1aEvtBlk = 56;
constexpr std::size_t kFadtPm1aCntBlk = 64;
constexpr std::size_t kFadtPmTmrBlk = 76;
constexpr std::size_t kFadtPm1EvtLen = 88;
constexpr std::size_t kFadtPm1CntLen = 89;
constexpr std::size_t kFadtFlags = 112;
constexpr std::size_t kFadtXDsdt = 140;
constexpr std::size_t kFadtSleepControl = 244;
constexpr std::size_t kMadtLocalApicAddress = 36;
constexpr std::size_t kMadtEntries = 44;
constexpr std::uint32_t kHwReducedAcpi = 1U << 20;

unsigned byte_sum(std::span<const std::byte> bytes) {
  unsigned sum = 0;
  for (std::byte b : bytes) sum += std::to_integer<unsigned>(b);
  return sum & 0xff;
}

struct Table {
  std::uint64_t address = 0;
  std::span<const std::byte> bytes;  // the whole table, `length` bytes
  std::string signature() const { return bytes.size() < 4 ? std::string() : test::text_of(bytes.first(4)); }
};

// The tables as seen at guest address `base`: follows pointers and checks they stay in the blob.
class AcpiBlob {
 public:
  AcpiBlob(GuestAddress base, std::vector<std::byte> bytes) : base_(base), bytes_(std::move(bytes)) {}

  std::span<const std::byte> rsdp() const { return std::span(bytes_).first(kRsdpSize); }

  Table table_at(std::uint64_t address) const {
    EXPECT_GE(address, base_.value);
    const std::uint64_t offset = address - base_.value;
    if (offset + kHeaderSize > bytes_.size()) {
      ADD_FAILURE() << "table at " << std::hex << address << " is outside the blob";
      return {};
    }
    const auto length = load<std::uint32_t>(bytes_, offset + kHeaderLength);
    EXPECT_GE(length, kHeaderSize);
    EXPECT_LE(offset + length, bytes_.size());
    return Table{address, std::span(bytes_).subspan(offset, std::min<std::size_t>(length, bytes_.size() - offset))};
  }

  Table xsdt() const { return table_at(load<std::uint64_t>(bytes_, kRsdpXsdt)); }

  // XSDT entries by signature.
  std::map<std::string, Table> tables() const {
    std::map<std::string, Table> out;
    const Table x = xsdt();
    for (std::size_t at = kHeaderSize; at + 8 <= x.bytes.size(); at += 8) {
      const Table t = table_at(load<std::uint64_t>(x.bytes, at));
      out[t.signature()] = t;
    }
    return out;
  }

  std::size_t size() const { return bytes_.size(); }

 private:
  GuestAddress base_;
  std::vector<std::byte> bytes_;
};

struct MadtContents {
  std::vector<std::uint8_t> apic_ids;  // enabled local APICs, in order
  std::vector<std::uint8_t> processor_uids;
  std::vector<std::uint32_t> io_apics;
};

MadtContents parse_madt(const Table& madt) {
  MadtContents out;
  for (std::size_t at = kMadtEntries; at + 2 <= madt.bytes.size();) {
    const auto type = load<std::uint8_t>(madt.bytes, at);
    const auto length = load<std::uint8_t>(madt.bytes, at + 1);
    if (length < 2) {
      ADD_FAILURE() << "MADT entry of length " << int{length};
      break;
    }
    if (type == 0 && length == 8) {
      EXPECT_EQ(load<std::uint32_t>(madt.bytes, at + 4) & 1, 1U) << "local APIC not enabled";
      out.processor_uids.push_back(load<std::uint8_t>(madt.bytes, at + 2));
      out.apic_ids.push_back(load<std::uint8_t>(madt.bytes, at + 3));
    } else if (type == 1 && length == 12) {
      out.io_apics.push_back(load<std::uint32_t>(madt.bytes, at + 4));
    }
    at += length;
  }
  return out;
}

class AcpiTables : public ::testing::TestWithParam<unsigned> {
 protected:
  unsigned vcpus() const { return GetParam(); }
  AcpiBlob blob_{layout::kAcpiTables, build_acpi_tables(layout::kAcpiTables, GetParam())};
};

TEST_P(AcpiTables, RsdpIsValid) {
  const auto rsdp = blob_.rsdp();
  EXPECT_EQ(test::text_of(rsdp.first(8)), "RSD PTR ");
  EXPECT_EQ(load<std::uint8_t>(rsdp, kRsdpRevision), 2);
  EXPECT_EQ(load<std::uint32_t>(rsdp, kRsdpLength), kRsdpSize);
  EXPECT_EQ(byte_sum(rsdp.first(20)), 0U) << "ACPI 1.0 checksum";
  EXPECT_EQ(byte_sum(rsdp), 0U) << "extended checksum";
}

TEST_P(AcpiTables, XsdtListsFadtAndMadt) {
  const Table xsdt = blob_.xsdt();
  ASSERT_FALSE(xsdt.bytes.empty());
  EXPECT_EQ(xsdt.signature(), "XSDT");
  EXPECT_EQ(xsdt.bytes.size(), kHeaderSize + 2 * 8);
  const auto tables = blob_.tables();
  EXPECT_EQ(tables.size(), 2U);
  EXPECT_TRUE(tables.contains("FACP"));
  EXPECT_TRUE(tables.contains("APIC"));
}

TEST_P(AcpiTables, EveryTableChecksumsToZero) {
  const Table xsdt = blob_.xsdt();
  EXPECT_EQ(byte_sum(xsdt.bytes), 0U) << "XSDT";
  const auto tables = blob_.tables();
  for (const auto& [signature, table] : tables) EXPECT_EQ(byte_sum(table.bytes), 0U) << signature;
  const Table& fadt = tables.at("FACP");
  const Table dsdt = blob_.table_at(load<std::uint64_t>(fadt.bytes, kFadtXDsdt));
  EXPECT_EQ(byte_sum(dsdt.bytes), 0U) << "DSDT";
}

TEST_P(AcpiTables, MadtHasOneLocalApicPerVcpuAndOneIoApic) {
  const Table madt = blob_.tables().at("APIC");
  EXPECT_EQ(load<std::uint32_t>(madt.bytes, kMadtLocalApicAddress), layout::kLocalApic.value);
  const MadtContents contents = parse_madt(madt);
  ASSERT_EQ(contents.apic_ids.size(), vcpus());
  for (unsigned i = 0; i < vcpus(); ++i) {
    EXPECT_EQ(contents.apic_ids[i], i);
    EXPECT_EQ(contents.processor_uids[i], i);
  }
  EXPECT_EQ(contents.io_apics, std::vector<std::uint32_t>{0xfec00000});
}

TEST_P(AcpiTables, FadtDescribesFixedHardwarePm1Blocks) {
  const Table fadt = blob_.tables().at("FACP");
  EXPECT_EQ(fadt.bytes.size(), 276U);  // ACPI 6.x FADT
  // Not hardware-reduced: Linux then keeps the legacy PIC and the ISA IRQ mapping COM1 needs.
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtFlags) & kHwReducedAcpi, 0U);
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtPm1aEvtBlk), layout::kPortAcpiPm1Event);
  EXPECT_EQ(load<std::uint8_t>(fadt.bytes, kFadtPm1EvtLen), 4);
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtPm1aCntBlk), layout::kPortAcpiPm1Control);
  EXPECT_EQ(load<std::uint8_t>(fadt.bytes, kFadtPm1CntLen), 2);
  EXPECT_EQ(load<std::uint16_t>(fadt.bytes, kFadtSciInt), layout::kIrqAcpiSci);
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtSmiCmd), 0U);  // always in ACPI mode
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtPmTmrBlk), 0U);
  EXPECT_EQ(load<std::uint8_t>(fadt.bytes, kFadtSleepControl), 0) << "no hardware-reduced sleep register";
}

TEST_P(AcpiTables, DsdtDefinesS5) {
  const Table fadt = blob_.tables().at("FACP");
  const auto x_dsdt = load<std::uint64_t>(fadt.bytes, kFadtXDsdt);
  EXPECT_EQ(load<std::uint32_t>(fadt.bytes, kFadtDsdt), x_dsdt);
  const Table dsdt = blob_.table_at(x_dsdt);
  EXPECT_EQ(dsdt.signature(), "DSDT");
  // Name (_S5_, Package () { 5 }): NameOp, NameSeg, PackageOp, PkgLength 4, 1 element, BytePrefix 5.
  const std::vector<std::uint8_t> aml{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x01, 0x0a, 0x05};
  ASSERT_EQ(dsdt.bytes.size(), kHeaderSize + aml.size());
  for (std::size_t i = 0; i < aml.size(); ++i) {
    EXPECT_EQ(load<std::uint8_t>(dsdt.bytes, kHeaderSize + i), aml[i]) << "AML byte " << i;
  }
  EXPECT_EQ(aml.back(), kAcpiSleepTypeS5);
}

TEST_P(AcpiTables, FitTheReservedArea) {
  EXPECT_LE(blob_.size(), layout::kAcpiReserved);
}

INSTANTIATE_TEST_SUITE_P(Vcpus, AcpiTables, ::testing::Values(1U, 2U, 32U));

TEST(AcpiTablesBase, PointersAreRelativeToTheBase) {
  const GuestAddress base(0x40000);
  const AcpiBlob blob(base, build_acpi_tables(base, 2));
  const AcpiBlob at_default(layout::kAcpiTables, build_acpi_tables(layout::kAcpiTables, 2));
  EXPECT_EQ(load<std::uint64_t>(blob.rsdp(), kRsdpXsdt) - base.value,
            load<std::uint64_t>(at_default.rsdp(), kRsdpXsdt) - layout::kAcpiTables.value);
  EXPECT_EQ(blob.tables().size(), 2U);  // every pointer resolves inside the blob
  EXPECT_EQ(byte_sum(blob.rsdp()), 0U);
}

TEST(AcpiTablesMemory, WriteAcpiTablesPlacesThemAtTheLayoutAddress) {
  const GuestMemory memory = test::make_memory(2 * test::kMiB);
  auto rsdp = write_acpi_tables(memory, 3);
  ASSERT_TRUE(rsdp.has_value()) << rsdp.error().message;
  EXPECT_EQ(*rsdp, layout::kAcpiTables);
  const auto expected = build_acpi_tables(layout::kAcpiTables, 3);
  EXPECT_EQ(test::guest_bytes(memory, layout::kAcpiTables, expected.size()), expected);
}

}  // namespace
}  // namespace microvm::boot

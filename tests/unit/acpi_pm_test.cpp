// ACPI PM1a registers (ACPI 6.4 §4.8.3.1-2): status reads 0, enable is stored, control always
// reports SCI_EN, and only SLP_EN together with SLP_TYP = S5 in PM1a_CNT powers the VM off. (The
// register layout is pinned by static_asserts in devices/acpi_pm.h, its agreement with the FADT and
// DSDT in vmm/machine.cpp.)
#include "devices/acpi_pm.h"

#include <gtest/gtest.h>

namespace microvm::devices {
namespace {

constexpr std::uint16_t kSlpTypS5 = 5 << 10;  // ACPI 6.4 table 4.16, written out as a guest does
constexpr std::uint16_t kSlpEn = 1 << 13;
constexpr std::uint64_t kStatus = 0;
constexpr std::uint64_t kEnable = 2;
constexpr std::uint64_t kControl = AcpiPm::kControlBlockOffset;

class AcpiPmTest : public ::testing::Test {
 protected:
  // Little-endian accesses of 1, 2 or 4 bytes, like the guest's in/out instructions.
  void write(std::uint64_t offset, std::uint32_t value, std::size_t size = 2) {
    std::uint8_t bytes[4];
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(value >> (8 * i));
    pm_.write(offset, std::span(bytes, size));
  }
  std::uint32_t read(std::uint64_t offset, std::size_t size = 2) {
    std::uint8_t bytes[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    pm_.read(offset, std::span(bytes, size));
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < size; ++i) value |= std::uint32_t{bytes[i]} << (8 * i);
    return value;
  }

  int power_offs_ = 0;
  AcpiPm pm_{[this] { ++power_offs_; }};
};

TEST_F(AcpiPmTest, S5WithSleepEnablePowersOff) {
  write(kControl, kSlpTypS5 | kSlpEn);
  EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiPmTest, LinuxTwoStepSequencePowersOffOnTheSecondWrite) {
  // ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN.
  write(kControl, kSlpTypS5);
  EXPECT_EQ(power_offs_, 0);
  write(kControl, kSlpTypS5 | kSlpEn);
  EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiPmTest, HighByteWriteCarriesSleepBits) {
  write(kControl + 1, (kSlpTypS5 | kSlpEn) >> 8, 1);
  EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiPmTest, OtherSleepStatesDoNothing) {
  for (std::uint16_t type = 0; type < 8; ++type) {
    if (type == 5) continue;
    write(kControl, static_cast<std::uint16_t>(type << 10) | kSlpEn);
  }
  EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiPmTest, SleepEnableIsNotLatched) {
  write(kControl, kSlpTypS5);
  write(kControl, 0x00, 1);  // low byte only: SLP_TYP kept, SLP_EN not written
  EXPECT_EQ(power_offs_, 0);
  EXPECT_EQ(read(kControl), kSlpTypS5 | AcpiPm::kSciEnable);
}

TEST_F(AcpiPmTest, ControlAlwaysReportsSciEnabled) {
  EXPECT_EQ(read(kControl), AcpiPm::kSciEnable);
  write(kControl, 0);
  EXPECT_EQ(read(kControl), AcpiPm::kSciEnable);
  write(kControl, kSlpTypS5 | kSlpEn);
  EXPECT_EQ(read(kControl), kSlpTypS5 | AcpiPm::kSciEnable);  // SLP_EN is write-only
}

TEST_F(AcpiPmTest, EventBlockWritesNeverPowerOff) {
  write(kStatus, kSlpTypS5 | kSlpEn);
  write(kEnable, kSlpTypS5 | kSlpEn);
  write(kStatus, (kSlpTypS5 | kSlpEn) * 0x10001U, 4);
  EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiPmTest, StatusReadsZeroAndEnableIsStored) {
  write(kStatus, 0xffff);
  write(kEnable, 0x0121);
  EXPECT_EQ(read(kStatus), 0U);
  EXPECT_EQ(read(kEnable), 0x0121U);
  EXPECT_EQ(read(kStatus, 4), 0x01210000U);  // one 32-bit read of the whole event block
  write(kStatus, 0x00200000, 4);             // a 32-bit write reaches PM1_EN through its upper half
  EXPECT_EQ(read(kEnable), 0x0020U);
  write(kEnable + 1, 0x01, 1);
  EXPECT_EQ(read(kEnable), 0x0120U);
}

TEST_F(AcpiPmTest, BeyondTheBlocksReadsAllOnes) {
  EXPECT_EQ(read(AcpiPm::kSize, 1), 0xffU);
  EXPECT_EQ(read(AcpiPm::kControlBlockOffset, 4), 0xffff0000U | AcpiPm::kSciEnable);
  write(AcpiPm::kSize, kSlpTypS5 | kSlpEn);
  EXPECT_EQ(power_offs_, 0);
}

}  // namespace
}  // namespace microvm::devices

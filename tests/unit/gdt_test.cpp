// GDT descriptors: gdt_entry/decode_segment agree, and the boot GDT in guest memory is what the
// 64-bit boot protocol asks for (boot.rst: __BOOT_CS 0x10 execute/read, __BOOT_DS 0x18 read/write).
// The selectors and gdt_entry's bit layout are pinned by static_asserts in boot/x86_64/gdt.h.
#include "boot/x86_64/gdt.h"

#include <gtest/gtest.h>

#include "boot/layout.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::kMiB;

struct RoundTrip {
  std::uint16_t flags;
  std::uint32_t base;
  std::uint32_t limit;
};

class GdtRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(GdtRoundTrip, DecodeInvertsEncode) {
  const auto [flags, base, limit] = GetParam();
  const Segment s = decode_segment(gdt_entry(flags, base, limit), 0x28);
  const bool g = (flags & 0x8000) != 0;
  EXPECT_EQ(s.base, base);
  EXPECT_EQ(s.limit, g ? ((limit & 0xfffff) << 12) | 0xfff : limit & 0xfffff);
  EXPECT_EQ(s.selector, 0x28);
  EXPECT_EQ(s.type, flags & 0xf);
  EXPECT_EQ(s.s, (flags & 0x10) != 0);
  EXPECT_EQ(s.dpl, (flags >> 5) & 3);
  EXPECT_EQ(s.present, (flags & 0x80) != 0);
  EXPECT_EQ(s.avl, (flags & 0x1000) != 0);
  EXPECT_EQ(s.l, (flags & 0x2000) != 0);
  EXPECT_EQ(s.db, (flags & 0x4000) != 0);
  EXPECT_EQ(s.g, g);
}

INSTANTIATE_TEST_SUITE_P(Descriptors, GdtRoundTrip,
                         ::testing::Values(RoundTrip{0xa09b, 0, 0xfffff}, RoundTrip{0xc093, 0, 0xfffff},
                                           RoundTrip{0x808b, 0, 0xfffff}, RoundTrip{0x00f3, 0x12345678, 0xabcde},
                                           RoundTrip{0x10e2, 0xff000001, 0x00001}, RoundTrip{0x0000, 0, 0}));

class BootGdt : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fill(memory_, layout::kGdt, 0x100, 0xee);
    auto result = write_boot_gdt(memory_);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    segments_ = *result;
  }

  Segment in_memory(std::uint16_t selector) const {
    return decode_segment(test::guest_obj<std::uint64_t>(memory_, GuestAddress(layout::kGdt.value + selector)),
                          selector);
  }

  static void expect_flat(const Segment& s) {
    EXPECT_EQ(s.base, 0U);
    EXPECT_EQ(s.limit, 0xffffffffU);
    EXPECT_TRUE(s.g);
    EXPECT_TRUE(s.present);
    EXPECT_EQ(s.dpl, 0);
  }

  GuestMemory memory_ = test::make_memory(2 * kMiB);
  BootSegments segments_;
};

TEST_F(BootGdt, CodeIsA64BitExecuteReadFlatSegment) {
  const Segment cs = in_memory(kBootCsSelector);
  expect_flat(cs);
  EXPECT_TRUE(cs.s);
  EXPECT_TRUE(cs.l);
  EXPECT_FALSE(cs.db);            // L=1 requires D=0
  EXPECT_EQ(cs.type & 0x8, 0x8);  // code
  EXPECT_EQ(cs.type & 0x2, 0x2);  // readable
  EXPECT_EQ(segments_.code.selector, kBootCsSelector);
  EXPECT_EQ(segments_.code.type, cs.type);
  EXPECT_EQ(segments_.code.l, cs.l);
}

TEST_F(BootGdt, DataIsAReadWriteFlatSegment) {
  const Segment ds = in_memory(kBootDsSelector);
  expect_flat(ds);
  EXPECT_TRUE(ds.s);
  EXPECT_FALSE(ds.l);
  EXPECT_TRUE(ds.db);
  EXPECT_EQ(ds.type & 0x8, 0);    // data
  EXPECT_EQ(ds.type & 0x2, 0x2);  // writable
  EXPECT_EQ(segments_.data.selector, kBootDsSelector);
  EXPECT_EQ(segments_.data.type, ds.type);
}

TEST_F(BootGdt, TssIsBusy) {
  const Segment tr = in_memory(kBootTssSelector);
  EXPECT_FALSE(tr.s);
  EXPECT_TRUE(tr.present);
  EXPECT_EQ(tr.type, 0xb);  // busy 64-bit TSS
  EXPECT_EQ(segments_.tss.type, 0xb);
  EXPECT_EQ(segments_.tss.selector, kBootTssSelector);
}

TEST_F(BootGdt, NullAndUnusedEntriesAreZero) {
  EXPECT_EQ(test::guest_obj<std::uint64_t>(memory_, layout::kGdt), 0U);
  EXPECT_EQ(test::guest_obj<std::uint64_t>(memory_, GuestAddress(layout::kGdt.value + 8)), 0U);
}

TEST_F(BootGdt, DescribesGdtAndEmptyIdt) {
  EXPECT_EQ(segments_.gdt_base, layout::kGdt);
  EXPECT_EQ(segments_.gdt_limit, kGdtEntries * 8 - 1);
  EXPECT_EQ(segments_.idt_base, layout::kIdt);
  EXPECT_EQ(segments_.idt_limit, 7);
  EXPECT_EQ(test::guest_obj<std::uint64_t>(memory_, layout::kIdt), 0U);
}

}  // namespace
}  // namespace microvm::boot

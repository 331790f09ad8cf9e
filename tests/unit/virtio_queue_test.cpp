// The device side of a split virtqueue (virtio 1.2 §2.7), driven by a mock driver in fake guest
// memory: chains round-trip, indices wrap at 2^16, indirect tables work, and every malformed ring a
// hostile driver can build is an error (never a crash or an out-of-bounds access).
#include "devices/virtio/queue.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/test_support.h"
#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices::virtio {

// Readable failure output (found by argument-dependent lookup, hence outside the unnamed namespace).
void PrintTo(const VirtqUsedElem& elem, std::ostream* os) {
  *os << "{id " << elem.id << ", len " << elem.len << "}";
}
void PrintTo(const Segment& segment, std::ostream* os) {
  *os << "{0x" << std::hex << segment.addr.value << std::dec << "+" << segment.len
      << (segment.device_writable ? " W}" : " R}");
}

namespace {

using test::MockVirtqDriver;
using Buffer = MockVirtqDriver::Buffer;

constexpr std::uint16_t kSize = 16;

class VirtioQueueTest : public ::testing::Test {
 protected:
  explicit VirtioQueueTest(std::uint64_t memory_size = MockVirtqDriver::kMemorySize) : driver_(kSize, memory_size) {}

  void SetUp() override {
    driver_.configure(queue_);
    auto valid = queue_.validate(driver_.memory());
    ASSERT_TRUE(valid.has_value()) << valid.error().message;
  }

  // Pops a chain that must be there.
  DescriptorChain pop_chain() {
    auto chain = queue_.pop(driver_.memory());
    EXPECT_TRUE(chain.has_value()) << chain.error().message;
    if (!chain) return {};
    EXPECT_TRUE(chain->has_value()) << "the ring is empty";
    return chain->value_or(DescriptorChain{});
  }
  bool ring_empty() {
    auto chain = queue_.pop(driver_.memory());
    EXPECT_TRUE(chain.has_value()) << chain.error().message;
    return chain.has_value() && !chain->has_value();
  }
  void use(std::uint16_t head, std::uint32_t len) {
    auto used = queue_.add_used(driver_.memory(), head, len);
    ASSERT_TRUE(used.has_value()) << used.error().message;
  }
  bool notify() {
    auto result = queue_.needs_notification(driver_.memory());
    EXPECT_TRUE(result.has_value()) << result.error().message;
    return result.value_or(false);
  }
  // Offers a one-buffer chain, pops it and returns it as used.
  void round_trip() {
    const std::uint16_t head = driver_.add_chain({{8, false}});
    EXPECT_EQ(pop_chain().head, head);
    use(head, 0);
  }
  void write_desc(std::uint16_t index, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                  std::uint16_t next = 0) {
    driver_.write_desc(index, {addr, len, flags, next});
  }
  GuestAddress buffer() { return driver_.alloc_buffer(64); }

  MockVirtqDriver driver_;
  Queue queue_;
};

// ---- normal operation --------------------------------------------------------------------------

TEST_F(VirtioQueueTest, SimpleChainRoundTrip) {
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = driver_.add_chain({{64, false}, {128, true}}, &addrs);

  const DescriptorChain chain = pop_chain();
  EXPECT_EQ(chain.head, head);
  EXPECT_EQ(chain.segments, (std::vector<Segment>{{addrs[0], 64, false}, {addrs[1], 128, true}}));
  EXPECT_EQ(chain.readable_len(), 64u);
  EXPECT_EQ(chain.writable_len(), 128u);
  EXPECT_EQ(driver_.used_idx(), 0);

  use(chain.head, 100);
  EXPECT_EQ(driver_.used_idx(), 1);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{head, 100}));
  EXPECT_EQ(queue_.next_avail(), 1);
  EXPECT_EQ(queue_.next_used(), 1);
  EXPECT_TRUE(ring_empty());
}

TEST_F(VirtioQueueTest, ChainsArePoppedInAvailOrderAndUsedInCompletionOrder) {
  const std::uint16_t a = driver_.add_chain({{8, false}});
  const std::uint16_t b = driver_.add_chain({{8, false}, {8, false}, {4, true}});
  const std::uint16_t c = driver_.add_chain({{16, true}});
  const DescriptorChain first = pop_chain();
  const DescriptorChain second = pop_chain();
  const DescriptorChain third = pop_chain();
  EXPECT_EQ(first.head, a);
  EXPECT_EQ(second.head, b);
  EXPECT_EQ(second.segments.size(), 3u);
  EXPECT_EQ(third.head, c);
  EXPECT_TRUE(ring_empty());

  use(c, 16);
  use(a, 0);
  use(b, 4);
  EXPECT_EQ(driver_.used_idx(), 3);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{c, 16}));
  EXPECT_EQ(driver_.used_elem(1), (VirtqUsedElem{a, 0}));
  EXPECT_EQ(driver_.used_elem(2), (VirtqUsedElem{b, 4}));
}

TEST_F(VirtioQueueTest, EmptyRingGivesNothing) {
  EXPECT_TRUE(ring_empty());
  EXPECT_EQ(queue_.next_avail(), 0);
}

TEST_F(VirtioQueueTest, QueueThatIsNotReadyGivesNothing) {
  driver_.add_chain({{8, false}});
  queue_.set_ready(false);
  EXPECT_TRUE(ring_empty());
  EXPECT_ERROR_CONTAINS(queue_.add_used(driver_.memory(), 0, 0), "not ready");
  queue_.set_ready(true);
  EXPECT_EQ(pop_chain().head, 0);
}

TEST_F(VirtioQueueTest, FullRingOfQueueSizeChains) {
  for (int i = 0; i < kSize; ++i) driver_.add_chain({{8, false}});
  for (int i = 0; i < kSize; ++i) EXPECT_EQ(pop_chain().head, i);
  EXPECT_TRUE(ring_empty());
}

TEST_F(VirtioQueueTest, IndicesWrapAroundAt65536) {
  driver_.start_at(65534);
  queue_.set_next_avail(65534);
  queue_.set_next_used(65534);
  std::vector<std::uint16_t> heads;
  for (int i = 0; i < 4; ++i) heads.push_back(driver_.add_chain({{8, false}, {8, true}}));
  EXPECT_EQ(driver_.avail_idx(), 2);
  for (std::uint16_t head : heads) {
    const DescriptorChain chain = pop_chain();
    EXPECT_EQ(chain.head, head);
    use(chain.head, 8);
  }
  EXPECT_TRUE(ring_empty());
  EXPECT_EQ(queue_.next_avail(), 2);
  EXPECT_EQ(driver_.used_idx(), 2);
  const std::uint16_t positions[] = {65534, 65535, 0, 1};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(driver_.used_elem(positions[i]), (VirtqUsedElem{heads[i], 8}));
}

TEST_F(VirtioQueueTest, ManyRoundTripsPastThe16BitWrap) {
  for (int i = 0; i < 70000; ++i) {
    round_trip();
    if (HasFailure()) return;
  }
  EXPECT_EQ(driver_.used_idx(), 70000 % 65536);
  EXPECT_EQ(queue_.next_avail(), 70000 % 65536);
  EXPECT_TRUE(ring_empty());
}

TEST_F(VirtioQueueTest, ChainAsLongAsTheQueueIsAccepted) {
  driver_.add_chain(std::vector<Buffer>(kSize, Buffer{4, false}));
  EXPECT_EQ(pop_chain().segments.size(), kSize);
}

TEST_F(VirtioQueueTest, ZeroLengthBufferIsAccepted) {
  driver_.add_chain({{0, false}, {0, true}});
  EXPECT_EQ(pop_chain().segments.size(), 2u);
}

TEST_F(VirtioQueueTest, IndirectChain) {
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = driver_.add_indirect_chain({{16, false}, {32, false}, {8, true}}, &addrs);
  const DescriptorChain chain = pop_chain();
  EXPECT_EQ(chain.head, head);
  EXPECT_EQ(chain.segments, (std::vector<Segment>{{addrs[0], 16, false}, {addrs[1], 32, false}, {addrs[2], 8, true}}));
  use(head, 8);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{head, 8}));
}

TEST_F(VirtioQueueTest, IndirectTableOfQueueSizeEntriesIsAccepted) {
  driver_.add_indirect_chain(std::vector<Buffer>(kSize, Buffer{4, true}));
  EXPECT_EQ(pop_chain().segments.size(), kSize);
}

// §2.7.5.3.2: zero or more direct descriptors followed by one indirect one; its WRITE flag is ignored.
TEST_F(VirtioQueueTest, DirectDescriptorsThenIndirectTable) {
  const GuestAddress table = driver_.alloc_indirect_table(2);
  const GuestAddress a = buffer(), b = buffer(), c = buffer();
  driver_.write_table_desc(table, 0, {b.value, 10, kDescFlagNext, 1});
  driver_.write_table_desc(table, 1, {c.value, 20, kDescFlagWrite, 0});
  write_desc(3, a.value, 5, kDescFlagNext, 7);
  write_desc(7, table.value, 32, kDescFlagIndirect | kDescFlagWrite);
  driver_.offer(3);
  const DescriptorChain chain = pop_chain();
  EXPECT_EQ(chain.head, 3);
  EXPECT_EQ(chain.segments, (std::vector<Segment>{{a, 5, false}, {b, 10, false}, {c, 20, true}}));
}

TEST_F(VirtioQueueTest, ResetClearsState) {
  round_trip();
  queue_.set_event_idx(true);
  queue_.reset();
  EXPECT_FALSE(queue_.ready());
  EXPECT_EQ(queue_.size(), Queue::max_size());
  EXPECT_EQ(queue_.descriptor_table(), GuestAddress(0));
  EXPECT_EQ(queue_.driver_area(), GuestAddress(0));
  EXPECT_EQ(queue_.device_area(), GuestAddress(0));
  EXPECT_EQ(queue_.next_avail(), 0);
  EXPECT_EQ(queue_.next_used(), 0);
  EXPECT_TRUE(ring_empty());  // not ready

  // Configured again without features: indirect descriptors are refused, avail_event is not written.
  MockVirtqDriver fresh(kSize);
  queue_.set_size(kSize);
  queue_.set_descriptor_table(MockVirtqDriver::kDescTable);
  queue_.set_driver_area(MockVirtqDriver::kAvailRing);
  queue_.set_device_area(MockVirtqDriver::kUsedRing);
  queue_.set_ready(true);
  fresh.write(GuestAddress(MockVirtqDriver::kUsedRing.value + 4 + 8 * kSize), std::uint16_t{0xabcd});
  fresh.add_chain({{8, false}});
  auto chain = queue_.pop(fresh.memory());
  ASSERT_TRUE(chain.has_value()) << chain.error().message;
  ASSERT_TRUE(chain->has_value());
  EXPECT_EQ((*chain)->head, 0);  // starts from avail position 0 again
  EXPECT_EQ(fresh.avail_event(), 0xabcd);
  fresh.add_indirect_chain({{8, false}});
  EXPECT_ERROR_CONTAINS(queue_.pop(fresh.memory()), "not negotiated");
}

// ---- hostile drivers ---------------------------------------------------------------------------

TEST_F(VirtioQueueTest, DescriptorLoopIsAnError) {
  write_desc(0, buffer().value, 8, kDescFlagNext, 1);
  write_desc(1, buffer().value, 8, kDescFlagNext, 0);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "loop");
}

TEST_F(VirtioQueueTest, SelfLoopIsAnError) {
  write_desc(5, buffer().value, 8, kDescFlagNext, 5);
  driver_.offer(5);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "more than 16 descriptors");
}

TEST_F(VirtioQueueTest, ChainLongerThanTheQueueIsAnError) {
  for (std::uint16_t i = 0; i < kSize; ++i) {
    write_desc(i, buffer().value, 8, kDescFlagNext, static_cast<std::uint16_t>(i + 1 < kSize ? i + 1 : 3));
  }
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "more than 16 descriptors");
}

TEST_F(VirtioQueueTest, NextIndexBeyondTheQueueIsAnError) {
  write_desc(0, buffer().value, 8, kDescFlagNext, kSize);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "chains to 16");
}

TEST_F(VirtioQueueTest, HeadIndexBeyondTheQueueIsAnError) {
  driver_.offer(kSize);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "names descriptor 16");
  Queue other;
  driver_.configure(other);
  other.set_next_avail(driver_.avail_idx());
  driver_.offer(0xffff);
  EXPECT_ERROR_CONTAINS(other.pop(driver_.memory()), "names descriptor 65535");
}

TEST_F(VirtioQueueTest, BufferOutsideGuestMemoryIsAnError) {
  write_desc(0, MockVirtqDriver::kMemorySize - 8, 16, 0);  // straddles the end
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "outside guest memory");
}

TEST_F(VirtioQueueTest, BufferFarOutsideGuestMemoryIsAnError) {
  write_desc(0, buffer().value, 8, kDescFlagNext | kDescFlagWrite, 1);
  write_desc(1, 1ULL << 40, 1, kDescFlagWrite);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "outside guest memory");
}

TEST_F(VirtioQueueTest, BufferWrappingAround2To64IsAnError) {
  write_desc(0, UINT64_MAX - 3, 16, 0);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "wraps around");
}

TEST_F(VirtioQueueTest, ReadableAfterWritableIsAnError) {
  driver_.add_chain({{8, false}, {8, true}, {8, false}});
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "follows a device-writable");
}

TEST_F(VirtioQueueTest, ReadableIndirectAfterWritableDirectIsAnError) {
  const GuestAddress table = driver_.alloc_indirect_table(1);
  driver_.write_table_desc(table, 0, {buffer().value, 8, 0, 0});
  write_desc(0, buffer().value, 8, kDescFlagWrite | kDescFlagNext, 1);
  write_desc(1, table.value, 16, kDescFlagIndirect);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "follows a device-writable");
}

TEST_F(VirtioQueueTest, ReadableAfterWritableInsideAnIndirectTableIsAnError) {
  driver_.add_indirect_chain({{8, true}, {8, false}});
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "follows a device-writable");
}

TEST_F(VirtioQueueTest, NestedIndirectTableIsAnError) {
  const GuestAddress inner = driver_.alloc_indirect_table(1);
  driver_.write_table_desc(inner, 0, {buffer().value, 8, 0, 0});
  const GuestAddress outer = driver_.alloc_indirect_table(2);
  driver_.write_table_desc(outer, 0, {buffer().value, 8, kDescFlagNext, 1});
  driver_.write_table_desc(outer, 1, {inner.value, 16, kDescFlagIndirect, 0});
  write_desc(0, outer.value, 32, kDescFlagIndirect);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "refers to another indirect table");
}

TEST_F(VirtioQueueTest, IndirectWithNextIsAnError) {
  const GuestAddress table = driver_.alloc_indirect_table(1);
  driver_.write_table_desc(table, 0, {buffer().value, 8, 0, 0});
  write_desc(0, table.value, 16, kDescFlagIndirect | kDescFlagNext, 1);
  write_desc(1, buffer().value, 8, 0);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "both INDIRECT and NEXT");
}

TEST_F(VirtioQueueTest, IndirectWithoutTheFeatureIsAnError) {
  queue_.set_indirect(false);
  driver_.add_indirect_chain({{8, false}});
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "kFeatureIndirectDesc was not negotiated");
}

TEST_F(VirtioQueueTest, IndirectTableOfBadLengthIsAnError) {
  const GuestAddress table = driver_.alloc_indirect_table(kSize + 1);
  for (std::uint16_t i = 0; i <= kSize; ++i) {
    driver_.write_table_desc(table, i, {buffer().value, 8, kDescFlagNext, static_cast<std::uint16_t>(i + 1)});
  }
  for (std::uint32_t len : {0u, 8u, 24u, 16u * kSize + 8, 16u * (kSize + 1), 0xfffffff0u}) {
    SCOPED_TRACE(len);
    Queue queue;
    driver_.configure(queue);
    queue.set_next_avail(driver_.avail_idx());
    write_desc(0, table.value, len, kDescFlagIndirect);
    driver_.offer(0);
    EXPECT_ERROR_CONTAINS(queue.pop(driver_.memory()), "indirect table of");
  }
}

TEST_F(VirtioQueueTest, IndirectTableOutsideGuestMemoryIsAnError) {
  write_desc(0, MockVirtqDriver::kMemorySize - 16, 32, kDescFlagIndirect);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "outside guest memory");
}

TEST_F(VirtioQueueTest, IndirectNextBeyondTheTableIsAnError) {
  const GuestAddress table = driver_.alloc_indirect_table(2);
  driver_.write_table_desc(table, 0, {buffer().value, 8, kDescFlagNext, 1});
  driver_.write_table_desc(table, 1, {buffer().value, 8, kDescFlagNext, 2});  // table has 2 entries
  write_desc(0, table.value, 32, kDescFlagIndirect);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "chains to 2, beyond the table of 2");
}

TEST_F(VirtioQueueTest, IndirectLoopIsAnError) {
  const GuestAddress table = driver_.alloc_indirect_table(4);
  for (std::uint16_t i = 0; i < 4; ++i) {
    driver_.write_table_desc(table, i, {buffer().value, 8, kDescFlagNext, static_cast<std::uint16_t>((i + 1) % 4)});
  }
  write_desc(0, table.value, 64, kDescFlagIndirect);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "more than 4 descriptors");
}

TEST_F(VirtioQueueTest, AvailIdxJumpingMoreThanTheQueueSizeIsAnError) {
  driver_.set_avail_idx(kSize + 1);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "driver advanced avail idx by 17");
}

TEST_F(VirtioQueueTest, AvailIdxGoingBackwardsIsAnError) {
  round_trip();
  driver_.set_avail_idx(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "driver advanced avail idx by 65535");
}

TEST_F(VirtioQueueTest, AddUsedWithHeadBeyondTheQueueIsAnError) {
  EXPECT_ERROR_CONTAINS(queue_.add_used(driver_.memory(), kSize, 0), "beyond the queue size");
  EXPECT_EQ(driver_.used_idx(), 0);
}

TEST_F(VirtioQueueTest, PopOnAnUnvalidatedBadSizeIsAnErrorNotACrash) {
  queue_.set_size(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "power of two");
  EXPECT_ERROR_CONTAINS(queue_.add_used(driver_.memory(), 0, 0), "power of two");
  queue_.set_size(24);
  EXPECT_ERROR_CONTAINS(queue_.needs_notification(driver_.memory()), "power of two");
}

// Total length needs real room: 2 GiB + 2 MiB of lazily-backed guest memory.
class VirtioQueueBigMemoryTest : public VirtioQueueTest {
 protected:
  VirtioQueueBigMemoryTest() : VirtioQueueTest((2ULL << 30) + (2ULL << 20)) {}
};

TEST_F(VirtioQueueBigMemoryTest, ChainOf2To32BytesIsAnError) {
  const std::uint64_t big = 1ULL << 20;
  write_desc(0, big, 0x80000000u, kDescFlagNext, 1);
  write_desc(1, big, 0x7fffffffu, kDescFlagNext, 2);
  write_desc(2, big, 1, 0);
  driver_.offer(0);
  EXPECT_ERROR_CONTAINS(queue_.pop(driver_.memory()), "over the 2^32 limit");
}

TEST_F(VirtioQueueBigMemoryTest, ChainJustUnder2To32BytesIsAccepted) {
  const std::uint64_t big = 1ULL << 20;
  write_desc(0, big, 0x80000000u, kDescFlagNext, 1);
  write_desc(1, big, 0x7fffffffu, kDescFlagNext, 2);
  write_desc(2, big, 0, 0);
  driver_.offer(0);
  EXPECT_EQ(pop_chain().readable_len(), 0xffffffffu);
}

// ---- validate() --------------------------------------------------------------------------------

class VirtioQueueValidateTest : public VirtioQueueTest {
 protected:
  Result<void> validate() { return queue_.validate(driver_.memory()); }
};

TEST_F(VirtioQueueValidateTest, QueueSizeMustBeAPowerOfTwoUpToTheMaximum) {
  for (std::uint16_t size : {1, 2, 64, 256}) {
    queue_.set_size(size);
    EXPECT_TRUE(validate().has_value()) << size;
  }
  for (std::uint16_t size : {0, 3, 12, 255, 512, 32768, 65535}) {
    SCOPED_TRACE(size);
    queue_.set_size(size);
    EXPECT_ERROR_CONTAINS(validate(), "power of two");
  }
}

TEST_F(VirtioQueueValidateTest, PartsMustBeAligned) {
  queue_.set_descriptor_table(GuestAddress(0x1008));
  EXPECT_ERROR_CONTAINS(validate(), "descriptor table at 0x1008 is not 16-byte aligned");
  queue_.set_descriptor_table(GuestAddress(0x1010));
  EXPECT_TRUE(validate().has_value());
  queue_.set_driver_area(GuestAddress(0x3001));
  EXPECT_ERROR_CONTAINS(validate(), "avail ring at 0x3001 is not 2-byte aligned");
  queue_.set_driver_area(GuestAddress(0x3002));
  EXPECT_TRUE(validate().has_value());
  queue_.set_device_area(GuestAddress(0x4002));
  EXPECT_ERROR_CONTAINS(validate(), "used ring at 0x4002 is not 4-byte aligned");
  queue_.set_device_area(GuestAddress(0x4004));
  EXPECT_TRUE(validate().has_value());
}

TEST_F(VirtioQueueValidateTest, PartsMustLieInsideGuestMemory) {
  const std::uint64_t end = MockVirtqDriver::kMemorySize;
  queue_.set_descriptor_table(GuestAddress(end - 16 * kSize));  // exactly fits
  EXPECT_TRUE(validate().has_value());
  queue_.set_descriptor_table(GuestAddress(end - 16 * kSize + 16));
  EXPECT_ERROR_CONTAINS(validate(), "descriptor table");
  queue_.set_descriptor_table(GuestAddress(0xfffffffffffffff0));
  EXPECT_ERROR_CONTAINS(validate(), "outside guest memory");
  queue_.set_descriptor_table(MockVirtqDriver::kDescTable);

  queue_.set_driver_area(GuestAddress(end - (6 + 2 * kSize)));  // used_event is the last field
  EXPECT_TRUE(validate().has_value());
  queue_.set_driver_area(GuestAddress(end - (4 + 2 * kSize)));  // used_event would be outside
  EXPECT_ERROR_CONTAINS(validate(), "avail ring");
  queue_.set_driver_area(MockVirtqDriver::kAvailRing);

  queue_.set_device_area(GuestAddress(end - (8 + 8 * kSize)));  // fits with 2 bytes to spare
  EXPECT_TRUE(validate().has_value());
  queue_.set_device_area(GuestAddress(end - (4 + 8 * kSize)));  // avail_event would be outside
  EXPECT_ERROR_CONTAINS(validate(), "used ring");
}

// ---- notifications -----------------------------------------------------------------------------

TEST_F(VirtioQueueTest, WithoutEventIdxNotifiesAfterNewUsedEntries) {
  EXPECT_FALSE(notify());  // nothing used yet
  round_trip();
  EXPECT_TRUE(notify());
  EXPECT_FALSE(notify());  // nothing new since
  round_trip();
  round_trip();
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueTest, RestoredUsedIndexIsNotANewEntry) {
  driver_.start_at(500);
  queue_.set_next_avail(500);
  queue_.set_next_used(500);
  EXPECT_FALSE(notify());
  round_trip();
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueTest, QueueThatIsNotReadyNeedsNoNotification) {
  round_trip();
  queue_.set_ready(false);
  EXPECT_FALSE(notify());
}

TEST_F(VirtioQueueTest, NoInterruptFlagSuppressesNotifications) {
  driver_.set_avail_flags(kAvailFlagNoInterrupt);
  round_trip();
  EXPECT_FALSE(notify());
  driver_.set_avail_flags(0);
  round_trip();
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueTest, WithoutEventIdxAvailEventIsNotWritten) {
  driver_.write(GuestAddress(MockVirtqDriver::kUsedRing.value + 4 + 8 * kSize), std::uint16_t{0xabcd});
  round_trip();
  EXPECT_EQ(driver_.avail_event(), 0xabcd);
}

class VirtioQueueEventIdxTest : public VirtioQueueTest {
 protected:
  void SetUp() override {
    VirtioQueueTest::SetUp();
    queue_.set_event_idx(true);
  }
};

TEST_F(VirtioQueueEventIdxTest, UsedEventDecidesNotifications) {
  driver_.set_used_event(0);  // notify when the entry at used position 0 is written
  round_trip();               // used idx 0 -> 1
  EXPECT_TRUE(notify());
  round_trip();  // 1 -> 2: position 1 is not the event
  EXPECT_FALSE(notify());
  driver_.set_used_event(2);
  round_trip();  // 2 -> 3
  EXPECT_TRUE(notify());
  EXPECT_FALSE(notify());  // nothing new
}

TEST_F(VirtioQueueEventIdxTest, UsedEventInsideABatchNotifies) {
  driver_.set_used_event(1);
  round_trip();
  round_trip();
  round_trip();  // 0 -> 3 covers position 1
  EXPECT_TRUE(notify());
  driver_.set_used_event(7);
  round_trip();
  round_trip();  // 3 -> 5: not yet
  EXPECT_FALSE(notify());
  round_trip();
  round_trip();
  round_trip();  // 5 -> 8 covers 7
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueEventIdxTest, NoInterruptFlagIsIgnored) {
  driver_.set_avail_flags(kAvailFlagNoInterrupt);
  driver_.set_used_event(0);
  round_trip();
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueEventIdxTest, UsedEventRuleWrapsAround) {
  driver_.start_at(65534);
  queue_.set_next_avail(65534);
  queue_.set_next_used(65534);
  driver_.set_used_event(65535);
  round_trip();  // 65534 -> 65535
  EXPECT_FALSE(notify());
  round_trip();  // 65535 -> 0 covers 65535
  EXPECT_TRUE(notify());
  driver_.set_used_event(0);
  round_trip();  // 0 -> 1
  EXPECT_TRUE(notify());

  driver_.set_used_event(65535);  // behind us: only after a full lap
  round_trip();
  EXPECT_FALSE(notify());
}

TEST_F(VirtioQueueEventIdxTest, RestoredUsedIndexIsWhereTheRuleStarts) {
  driver_.start_at(100);
  queue_.set_next_avail(100);
  queue_.set_next_used(100);
  driver_.set_used_event(50);  // long passed
  round_trip();                // 100 -> 101
  EXPECT_FALSE(notify());
}

TEST_F(VirtioQueueEventIdxTest, BatchAcrossTheWrapNotifies) {
  driver_.start_at(65534);
  queue_.set_next_avail(65534);
  queue_.set_next_used(65534);
  driver_.set_used_event(0);
  for (int i = 0; i < 3; ++i) round_trip();  // 65534 -> 1 covers 0
  EXPECT_TRUE(notify());
}

TEST_F(VirtioQueueEventIdxTest, PopPublishesAvailEvent) {
  driver_.add_chain({{8, false}});
  driver_.add_chain({{8, false}});
  pop_chain();
  EXPECT_EQ(driver_.avail_event(), 1);
  pop_chain();
  EXPECT_EQ(driver_.avail_event(), 2);  // notify me when you add the entry at position 2
  EXPECT_TRUE(ring_empty());
  EXPECT_EQ(driver_.avail_event(), 2);
}

}  // namespace
}  // namespace microvm::devices::virtio

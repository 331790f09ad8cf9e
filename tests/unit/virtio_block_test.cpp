// virtio-blk (virtio 1.2 §5.2) against a temporary image file, driven through a mock driver's
// virtqueue: reads, writes, flushes and GET_ID reach the file and guest memory byte for byte; every
// malformed request a hostile guest can build fails (IOERR, UNSUPP, or a device error for a broken
// ring) without touching the image or memory it should not. The I/O runs on the drive's worker: a
// hook that hangs the image shows notify returning at once, reset and re-activation mid-request
// writing nothing after them, and destruction joining; 10 000 requests show the per-notify budget.
#include "devices/virtio/block.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "tests/unit/test_support.h"
#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices::virtio {
namespace {

using test::MockVirtqDriver;
using Buffer = MockVirtqDriver::Buffer;

constexpr std::uint16_t kQueueSize = 16;
constexpr std::uint64_t kSector = 512;
constexpr std::uint64_t kImageSectors = 64;
constexpr std::uint8_t kUnwritten = 0xaa;  // guest buffers are filled with this before a request
constexpr std::uint8_t kNoStatus = 0xee;   // the status byte before the device writes it

class FakeInterrupt final : public Interrupt {
 public:
  void signal_used_buffers() override { ++used; }
  void signal_config_change() override { ++config; }
  void signal_device_error(const Error& error) override { errors.push_back(error.message); }

  int used = 0;
  int config = 0;
  std::vector<std::string> errors;
};

// A temporary file under /tmp, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::span<const std::byte> contents) {
    std::array<char, 64> name{};
    std::strcpy(name.data(), "/tmp/microvm-block-test-XXXXXX");
    UniqueFd fd(::mkstemp(name.data()));
    if (!fd.valid()) throw std::runtime_error("mkstemp failed");
    path_ = name.data();
    if (::write(fd.get(), contents.data(), contents.size()) != static_cast<ssize_t>(contents.size())) {
      throw std::runtime_error("cannot write the test image");
    }
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::vector<std::byte> contents() const {
    std::error_code ec;
    std::vector<std::byte> out(std::filesystem::file_size(path_, ec));
    UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::pread(fd.get(), out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
      ADD_FAILURE() << "cannot read back " << path_;
    }
    return out;
  }

 private:
  std::string path_;
};

// Opens a drive whose deferred work nobody runs (the open tests do not notify it).
Result<std::unique_ptr<BlockDevice>> open_drive(const BlockOptions& options) {
  static boost::asio::io_context io;  // never run
  return BlockDevice::open(options, io.get_executor());
}

// The open descriptor of `path` in this process (-1 if none): to check how the device opened it.
int fd_of(const std::string& path) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec) == path) return std::stoi(entry.path().filename().string());
  }
  return -1;
}

std::vector<std::byte> slice_of(const std::vector<std::byte>& bytes, std::uint64_t offset, std::uint64_t len) {
  return {bytes.begin() + static_cast<std::ptrdiff_t>(offset),
          bytes.begin() + static_cast<std::ptrdiff_t>(offset + len)};
}

// Pseudo-random bytes: unlike test::pattern (period 256), no two sectors of an image are alike.
std::vector<std::byte> random_bytes(std::size_t len, std::uint32_t seed) {
  std::mt19937 engine(seed);
  std::vector<std::byte> out(len);
  for (std::byte& b : out) b = static_cast<std::byte>(engine() & 0xff);
  return out;
}

std::vector<std::byte> repeat(std::uint8_t value, std::size_t len) {
  return std::vector<std::byte>(len, static_cast<std::byte>(value));
}

// An image that hangs: the worker waits in the I/O hook until the test opens the gate (or, so that a
// broken test fails instead of hanging, until kGateTimeout passes).
class Gate {
 public:
  static constexpr std::chrono::seconds kGateTimeout{10};

  [[nodiscard]] BlockDevice::IoHook hook() {
    return [this] {
      std::unique_lock lock(mutex_);
      ++entered_;
      cv_.notify_all();
      cv_.wait_for(lock, kGateTimeout, [this] { return open_; });
    };
  }
  // Waits until the worker has reached the hook `count` times in all.
  [[nodiscard]] bool wait_entered(int count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, kGateTimeout, [&] { return entered_ >= count; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool open_ = false;
};

// How long `call` takes.
template <typename F>
std::chrono::steady_clock::duration timed(F&& call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::steady_clock::now() - start;
}
constexpr std::chrono::milliseconds kPrompt{1000};  // "at once", with room for a loaded machine

class VirtioBlockTest : public ::testing::Test {
 protected:
  VirtioBlockTest() : image_(random_bytes(kImageSectors * kSector, 3)), driver_(kQueueSize), queues_(1) {}

  void SetUp() override { open_device({image_.path(), false, "test-serial"}); }

  void open_device(const BlockOptions& options, BlockDevice::IoHook before_io = {}) {
    device_.reset();  // its worker first: the new one may use the same image
    auto device = BlockDevice::open(options, io_.get_executor(), std::move(before_io));
    ASSERT_TRUE(device.has_value()) << device.error().message;
    device_ = std::move(*device);
  }

  void activate(bool event_idx = false) {
    driver_.configure(queues_[0], event_idx, /*indirect=*/true);
    auto active = device_->activate(driver_.memory(), queues_, device_->features(), irq_);
    ASSERT_TRUE(active.has_value()) << active.error().message;
  }

  struct Sent {
    std::uint16_t head = 0;
    std::vector<GuestAddress> addrs;  // header, data..., status
  };

  // Offers a well-formed request: a 16-byte header buffer, the data buffers, a 1-byte status buffer.
  // Writable buffers are filled with kUnwritten, the status with kNoStatus.
  Sent send(std::uint32_t type, std::uint64_t sector, const std::vector<Buffer>& data, bool indirect = false) {
    std::vector<Buffer> buffers{{16, false}};
    buffers.insert(buffers.end(), data.begin(), data.end());
    buffers.push_back({1, true});
    Sent sent;
    sent.head = indirect ? driver_.add_indirect_chain(buffers, &sent.addrs) : driver_.add_chain(buffers, &sent.addrs);
    write_header(sent.addrs[0], type, sector);
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (data[i].writable) test::fill(driver_.memory(), sent.addrs[i + 1], data[i].len, kUnwritten);
    }
    driver_.write(sent.addrs.back(), kNoStatus);
    return sent;
  }
  void write_header(GuestAddress addr, std::uint32_t type, std::uint64_t sector) {
    virtio_blk_outhdr header{type, 0, sector};
    driver_.write(addr, header);
  }
  std::uint8_t status_of(const Sent& sent) { return driver_.read<std::uint8_t>(sent.addrs.back()); }
  std::vector<std::byte> bytes_at(GuestAddress addr, std::uint64_t len) {
    return test::guest_bytes(driver_.memory(), addr, len);
  }
  // Runs everything the device has to do: its worker's requests and its deferred pumps on the loop.
  void settle() {
    for (int round = 0; round < 100'000; ++round) {
      device_->drain();
      io_.restart();
      if (io_.poll() == 0) return;
    }
    ADD_FAILURE() << "the device never settled";
  }
  // A notification, and everything it sets off.
  void notify(std::uint16_t queue) {
    device_->notify(queue);
    settle();
  }
  // Runs the device and expects exactly `count` new used entries.
  void notify_and_expect_used(std::uint16_t count) {
    const std::uint16_t before = driver_.used_idx();
    notify(0);
    EXPECT_EQ(driver_.used_idx(), static_cast<std::uint16_t>(before + count));
  }
  VirtqUsedElem last_used() { return driver_.used_elem(static_cast<std::uint16_t>(driver_.used_idx() - 1)); }

  boost::asio::io_context io_;  // first: outlives the device; runs its deferred pumps when a test settles
  TempFile image_;
  MockVirtqDriver driver_;
  std::vector<Queue> queues_;
  FakeInterrupt irq_;
  std::unique_ptr<BlockDevice> device_;
};

// ---- identity, features, config space ------------------------------------------------------------

TEST_F(VirtioBlockTest, DeviceIdFeaturesAndCapacity) {
  EXPECT_EQ(device_->device_id(), static_cast<std::uint32_t>(VIRTIO_ID_BLOCK));
  EXPECT_EQ(device_->queue_count(), 1u);
  EXPECT_EQ(device_->capacity_sectors(), kImageSectors);
  const std::uint64_t expected = (1ULL << kFeatureVersion1) | (1ULL << kFeatureEventIdx) |
                                 (1ULL << kFeatureIndirectDesc) | (1ULL << VIRTIO_BLK_F_FLUSH) |
                                 (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE);
  EXPECT_EQ(device_->features(), expected);

  open_device({image_.path(), true, "ro"});
  EXPECT_EQ(device_->features(), expected | (1ULL << VIRTIO_BLK_F_RO));
}

class VirtioBlockConfigTest : public ::testing::Test {
 protected:
  // 0x10203 sectors and 100 bytes: a sparse image whose capacity has three distinct bytes, and a tail.
  static constexpr std::uint64_t kSectors = 0x10203;
  VirtioBlockConfigTest() : image_(std::span<const std::byte>{}) {
    EXPECT_EQ(::truncate(image_.path().c_str(), static_cast<off_t>(kSectors * kSector + 100)), 0);
    auto device = BlockDevice::open({image_.path(), false, "cfg"}, io_.get_executor());
    EXPECT_TRUE(device.has_value()) << device.error().message;
    if (device) device_ = std::move(*device);
  }
  std::vector<std::uint8_t> read(std::uint64_t offset, std::size_t len) {
    std::vector<std::uint8_t> out(len, 0x5a);
    device_->read_config(offset, out);
    return out;
  }
  boost::asio::io_context io_;
  TempFile image_;
  std::unique_ptr<BlockDevice> device_;
};

TEST_F(VirtioBlockConfigTest, CapacitySegMaxAndBlockSize) {
  ASSERT_NE(device_, nullptr);
  EXPECT_EQ(device_->capacity_sectors(), kSectors);  // the 100-byte tail is not exposed
  std::uint64_t capacity = 0;
  std::memcpy(&capacity, read(0, 8).data(), 8);
  EXPECT_EQ(capacity, kSectors);
  std::uint32_t seg_max = 0;
  std::memcpy(&seg_max, read(offsetof(virtio_blk_config, seg_max), 4).data(), 4);
  EXPECT_EQ(seg_max, Queue::kMaxSize - 2u);
  std::uint32_t blk_size = 0;
  std::memcpy(&blk_size, read(offsetof(virtio_blk_config, blk_size), 4).data(), 4);
  EXPECT_EQ(blk_size, 512u);
  std::uint32_t size_max = 0x12345678;  // SIZE_MAX is not offered: reads as 0
  std::memcpy(&size_max, read(offsetof(virtio_blk_config, size_max), 4).data(), 4);
  EXPECT_EQ(size_max, 0u);
}

TEST_F(VirtioBlockConfigTest, OddOffsetsAndWidths) {
  ASSERT_NE(device_, nullptr);
  EXPECT_EQ(read(1, 2), (std::vector<std::uint8_t>{0x02, 0x01}));         // capacity bytes 1..2
  EXPECT_EQ(read(2, 1), (std::vector<std::uint8_t>{0x01}));               // capacity byte 2
  EXPECT_EQ(read(11, 3), (std::vector<std::uint8_t>{0x00, 0xfe, 0x00}));  // size_max byte 3, seg_max bytes 0..1
  EXPECT_EQ(read(21, 2), (std::vector<std::uint8_t>{0x02, 0x00}));        // blk_size bytes 1..2
}

TEST_F(VirtioBlockConfigTest, ReadsPastTheEndAreZero) {
  ASSERT_NE(device_, nullptr);
  const std::size_t size = sizeof(virtio_blk_config);
  EXPECT_EQ(read(size - 2, 4), (std::vector<std::uint8_t>(4, 0)));
  EXPECT_EQ(read(size, 8), (std::vector<std::uint8_t>(8, 0)));
  EXPECT_EQ(read(0x1000, 4), (std::vector<std::uint8_t>(4, 0)));
  EXPECT_EQ(read(std::numeric_limits<std::uint64_t>::max() - 1, 4), (std::vector<std::uint8_t>(4, 0)));
  // A read that starts inside and runs past the end gets the inside bytes.
  std::vector<std::uint8_t> whole = read(0, size + 8);
  EXPECT_EQ(whole[1], 0x02);
  EXPECT_EQ(std::vector<std::uint8_t>(whole.end() - 8, whole.end()), std::vector<std::uint8_t>(8, 0));
}

TEST_F(VirtioBlockConfigTest, WritesAreIgnored) {
  ASSERT_NE(device_, nullptr);
  const std::vector<std::uint8_t> before = read(0, sizeof(virtio_blk_config));
  const std::vector<std::uint8_t> junk(sizeof(virtio_blk_config), 0x77);
  device_->write_config(0, junk);
  device_->write_config(3, std::vector<std::uint8_t>{1});
  device_->write_config(std::numeric_limits<std::uint64_t>::max(), std::vector<std::uint8_t>{1, 2});
  EXPECT_EQ(read(0, sizeof(virtio_blk_config)), before);
  EXPECT_EQ(device_->capacity_sectors(), kSectors);
}

// ---- open() ---------------------------------------------------------------------------------------

TEST_F(VirtioBlockTest, OpensReadWriteWithCloseOnExec) {
  const int fd = fd_of(image_.path());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

TEST(VirtioBlockOpenTest, ReadOnlyFileOpenedReadOnlyHasNoWriteAccess) {
  TempFile image(test::pattern(4 * kSector));
  ASSERT_EQ(::chmod(image.path().c_str(), 0444), 0);
  auto device = open_drive({image.path(), true, "ro"});
  ASSERT_TRUE(device.has_value()) << device.error().message;
  EXPECT_TRUE((*device)->read_only());
  const int fd = fd_of(image.path());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  if (::geteuid() != 0) {  // root may write anyway
    EXPECT_ERROR_CONTAINS(open_drive({image.path(), false, "rw"}), "read-only");
  }
}

TEST(VirtioBlockOpenTest, MissingFile) {
  auto device = open_drive({"/nonexistent/microvm/y.img", false, "x"});
  ASSERT_FALSE(device.has_value());
  EXPECT_EQ(device.error().message, "cannot open drive /nonexistent/microvm/y.img: No such file or directory");
}

TEST(VirtioBlockOpenTest, DirectoryIsRefused) {
  for (bool read_only : {false, true}) {
    auto device = open_drive({"/tmp", read_only, "x"});
    ASSERT_FALSE(device.has_value());
    EXPECT_EQ(device.error().message, "drive /tmp is a directory, not an image file");
  }
}

TEST(VirtioBlockOpenTest, CharacterDeviceIsRefused) {
  EXPECT_ERROR_CONTAINS(open_drive({"/dev/null", true, "x"}), "not a regular file or a block device");
}

TEST(VirtioBlockOpenTest, IdLongerThanTwentyBytesIsRefused) {
  TempFile image(test::pattern(kSector));
  EXPECT_ERROR_CONTAINS(open_drive({image.path(), false, std::string(21, 'x')}), "at most 20 bytes");
  EXPECT_TRUE(open_drive({image.path(), false, std::string(20, 'x')}).has_value());
}

TEST(VirtioBlockOpenTest, EmptyPathIsRefused) {
  EXPECT_ERROR_CONTAINS(open_drive({"", false, "x"}), "path is empty");
}

// ---- requests -----------------------------------------------------------------------------------

TEST_F(VirtioBlockTest, Read) {
  activate();
  const Sent sent = send(VIRTIO_BLK_T_IN, 2, {{1024, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{sent.head, 1024 + 1}));
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(sent.addrs[1], 1024), slice_of(image_.contents(), 2 * kSector, 1024));
  EXPECT_EQ(irq_.used, 1);
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, ReadIntoSeveralBuffers) {
  activate();
  const Sent sent = send(VIRTIO_BLK_T_IN, kImageSectors - 3, {{512, true}, {1024, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(last_used().len, 1536u + 1);
  const auto file = image_.contents();
  EXPECT_EQ(bytes_at(sent.addrs[1], 512), slice_of(file, (kImageSectors - 3) * kSector, 512));
  EXPECT_EQ(bytes_at(sent.addrs[2], 1024), slice_of(file, (kImageSectors - 2) * kSector, 1024));
}

TEST_F(VirtioBlockTest, Write) {
  activate();
  const auto before = image_.contents();
  const Sent sent = send(VIRTIO_BLK_T_OUT, 3, {{512, false}, {1024, false}});
  const auto data = random_bytes(1536, 99);
  ASSERT_TRUE(driver_.memory().write(sent.addrs[1], std::span(data).first(512)).has_value());
  ASSERT_TRUE(driver_.memory().write(sent.addrs[2], std::span(data).subspan(512)).has_value());
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{sent.head, 1}));
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  const auto after = image_.contents();
  EXPECT_EQ(slice_of(after, 3 * kSector, 1536), data);
  EXPECT_EQ(slice_of(after, 0, 3 * kSector), slice_of(before, 0, 3 * kSector));
  EXPECT_EQ(slice_of(after, 6 * kSector, (kImageSectors - 6) * kSector),
            slice_of(before, 6 * kSector, (kImageSectors - 6) * kSector));
}

TEST_F(VirtioBlockTest, Flush) {
  activate();
  const Sent sent = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{sent.head, 1}));
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(device_->stats().flushes, 1u);
}

TEST_F(VirtioBlockTest, GetIdIsNulPadded) {
  activate();
  const Sent sent = send(VIRTIO_BLK_T_GET_ID, 0, {{VIRTIO_BLK_ID_BYTES, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(last_used().len, static_cast<std::uint32_t>(VIRTIO_BLK_ID_BYTES) + 1);
  std::vector<std::byte> expected = test::to_bytes("test-serial");
  expected.resize(VIRTIO_BLK_ID_BYTES, std::byte{0});
  EXPECT_EQ(bytes_at(sent.addrs[1], VIRTIO_BLK_ID_BYTES), expected);
}

TEST_F(VirtioBlockTest, GetIdOfTwentyBytesHasNoNulAndStopsAtTwenty) {
  open_device({image_.path(), false, "abcdefghijklmnopqrst"});
  activate();
  const Sent sent = send(VIRTIO_BLK_T_GET_ID, 0, {{32, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(last_used().len, 21u);
  std::vector<std::byte> expected = test::to_bytes("abcdefghijklmnopqrst");
  const auto tail = repeat(kUnwritten, 12);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(bytes_at(sent.addrs[1], 32), expected);
}

TEST_F(VirtioBlockTest, GetIdDefaultsToTheFileName) {
  open_device({image_.path(), false, ""});
  activate();
  const Sent sent = send(VIRTIO_BLK_T_GET_ID, 0, {{8, true}, {12, true}});  // split over two buffers
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  const std::string name = std::filesystem::path(image_.path()).filename().string().substr(0, 20);
  std::vector<std::byte> got = bytes_at(sent.addrs[1], 8);
  const auto second = bytes_at(sent.addrs[2], 12);
  got.insert(got.end(), second.begin(), second.end());
  std::vector<std::byte> expected = test::to_bytes(name);
  expected.resize(20, std::byte{0});
  EXPECT_EQ(got, expected);
}

TEST_F(VirtioBlockTest, GetIdWithoutABufferFails) {
  activate();
  const Sent sent = send(VIRTIO_BLK_T_GET_ID, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(last_used().len, 1u);
}

TEST_F(VirtioBlockTest, UnsupportedTypes) {
  activate();
  for (std::uint32_t type : {std::uint32_t{VIRTIO_BLK_T_DISCARD}, std::uint32_t{VIRTIO_BLK_T_WRITE_ZEROES},
                             std::uint32_t{VIRTIO_BLK_T_SCSI_CMD}, 0xdeadbeefU}) {
    const Sent sent = send(type, 0, {{512, true}});
    notify_and_expect_used(1);
    EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_UNSUPP) << "type " << type;
    EXPECT_EQ(last_used(), (VirtqUsedElem{sent.head, 1}));
    EXPECT_EQ(bytes_at(sent.addrs[1], 512), repeat(kUnwritten, 512));
  }
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, ReadBeyondTheEndFails) {
  activate();
  for (std::uint64_t sector : {kImageSectors, kImageSectors - 1, kImageSectors + 1000}) {
    const Sent sent = send(VIRTIO_BLK_T_IN, sector, {{1024, true}});
    notify_and_expect_used(1);
    EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_IOERR) << "sector " << sector;
    EXPECT_EQ(last_used().len, 1u);
    EXPECT_EQ(bytes_at(sent.addrs[1], 1024), repeat(kUnwritten, 1024));
  }
  // The last two sectors are inside.
  const Sent sent = send(VIRTIO_BLK_T_IN, kImageSectors - 2, {{1024, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlockTest, SectorNearTwoToTheSixtyFourDoesNotWrapAround) {
  activate();
  const auto before = image_.contents();
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  // kMax / 512 + 1: sector * 512 wraps to 0; kMax - 1 + 2 sectors wraps the sector count.
  for (std::uint64_t sector : {kMax, kMax - 1, kMax / kSector + 1, kMax / kSector}) {
    const Sent read = send(VIRTIO_BLK_T_IN, sector, {{1024, true}});
    const Sent write = send(VIRTIO_BLK_T_OUT, sector, {{1024, false}});
    notify_and_expect_used(2);
    EXPECT_EQ(status_of(read), VIRTIO_BLK_S_IOERR) << "sector " << sector;
    EXPECT_EQ(status_of(write), VIRTIO_BLK_S_IOERR) << "sector " << sector;
    EXPECT_EQ(bytes_at(read.addrs[1], 1024), repeat(kUnwritten, 1024));
  }
  EXPECT_EQ(image_.contents(), before);
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, LengthNotAMultipleOfTheSectorFails) {
  activate();
  const auto before = image_.contents();
  const Sent read = send(VIRTIO_BLK_T_IN, 0, {{100, true}});
  const Sent read2 = send(VIRTIO_BLK_T_IN, 0, {{512, true}, {1, true}});
  const Sent write = send(VIRTIO_BLK_T_OUT, 0, {{513, false}});
  notify_and_expect_used(3);
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status_of(read2), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status_of(write), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(bytes_at(read.addrs[1], 100), repeat(kUnwritten, 100));
  EXPECT_EQ(bytes_at(read2.addrs[1], 512), repeat(kUnwritten, 512));
  EXPECT_EQ(image_.contents(), before);
}

TEST_F(VirtioBlockTest, DataInTheWrongDirectionFails) {
  activate();
  const auto before = image_.contents();
  const Sent read = send(VIRTIO_BLK_T_IN, 0, {{512, false}});   // IN with device-readable data
  const Sent write = send(VIRTIO_BLK_T_OUT, 0, {{512, true}});  // OUT with device-writable data
  const Sent mixed = send(VIRTIO_BLK_T_OUT, 0, {{512, false}, {512, true}});
  notify_and_expect_used(3);
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status_of(write), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status_of(mixed), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(bytes_at(write.addrs[1], 512), repeat(kUnwritten, 512));
  EXPECT_EQ(image_.contents(), before);
}

TEST_F(VirtioBlockTest, ReadOnlyDriveRefusesWrites) {
  open_device({image_.path(), true, "ro"});
  activate();
  const auto before = image_.contents();
  const Sent write = send(VIRTIO_BLK_T_OUT, 0, {{512, false}});
  ASSERT_TRUE(driver_.memory().write(write.addrs[1], random_bytes(512, 42)).has_value());
  const Sent read = send(VIRTIO_BLK_T_IN, 0, {{512, true}});
  notify_and_expect_used(2);
  EXPECT_EQ(status_of(write), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_OK);  // reads still work
  EXPECT_EQ(bytes_at(read.addrs[1], 512), slice_of(before, 0, 512));
  EXPECT_EQ(image_.contents(), before);
  EXPECT_EQ(device_->stats().written_bytes, 0u);
}

TEST_F(VirtioBlockTest, HeaderSplitOverTwoDescriptors) {
  activate();
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = driver_.add_chain({{6, false}, {10, false}, {512, true}, {1, true}}, &addrs);
  std::array<std::byte, 16> header{};
  const virtio_blk_outhdr fields{VIRTIO_BLK_T_IN, 0, 5};
  std::memcpy(header.data(), &fields, sizeof(fields));
  ASSERT_TRUE(driver_.memory().write(addrs[0], std::span(header).first(6)).has_value());
  ASSERT_TRUE(driver_.memory().write(addrs[1], std::span(header).subspan(6)).has_value());
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{head, 513}));
  EXPECT_EQ(driver_.read<std::uint8_t>(addrs[3]), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(addrs[2], 512), slice_of(image_.contents(), 5 * kSector, 512));
}

TEST_F(VirtioBlockTest, HeaderAndDataInOneBufferAndStatusInTheDataBuffer) {
  activate();
  // OUT: header and the data in one readable buffer; IN: the data and the status in one writable buffer.
  std::vector<GuestAddress> out_addrs;
  driver_.add_chain({{16 + 512, false}, {1, true}}, &out_addrs);
  write_header(out_addrs[0], VIRTIO_BLK_T_OUT, 7);
  const auto data = random_bytes(512, 77);
  ASSERT_TRUE(driver_.memory().write(GuestAddress(out_addrs[0].value + 16), data).has_value());
  std::vector<GuestAddress> in_addrs;
  const std::uint16_t in_head = driver_.add_chain({{16, false}, {512 + 1, true}}, &in_addrs);
  write_header(in_addrs[0], VIRTIO_BLK_T_IN, 7);
  notify_and_expect_used(2);
  EXPECT_EQ(driver_.read<std::uint8_t>(out_addrs[1]), VIRTIO_BLK_S_OK);
  EXPECT_EQ(slice_of(image_.contents(), 7 * kSector, 512), data);
  EXPECT_EQ(last_used(), (VirtqUsedElem{in_head, 513}));
  EXPECT_EQ(bytes_at(in_addrs[1], 512), data);
  EXPECT_EQ(driver_.read<std::uint8_t>(GuestAddress(in_addrs[1].value + 512)), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlockTest, HeaderInAWritableBufferFails) {
  activate();
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = driver_.add_chain({{16, true}, {512, true}, {1, true}}, &addrs);
  write_header(addrs[0], VIRTIO_BLK_T_IN, 0);
  test::fill(driver_.memory(), addrs[1], 512, kUnwritten);
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{head, 1}));  // only the status byte
  EXPECT_EQ(driver_.read<std::uint8_t>(addrs[2]), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(bytes_at(addrs[1], 512), repeat(kUnwritten, 512));
  EXPECT_EQ(device_->stats().errors, 1u);
}

TEST_F(VirtioBlockTest, ShortHeaderFails) {
  activate();
  std::vector<GuestAddress> addrs;
  driver_.add_chain({{15, false}, {1, true}}, &addrs);
  notify_and_expect_used(1);
  EXPECT_EQ(driver_.read<std::uint8_t>(addrs[1]), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlockTest, ChainWithoutStatusByteIsReturnedUnserved) {
  activate();
  const auto before = image_.contents();
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = driver_.add_chain({{16, false}, {512, false}}, &addrs);
  write_header(addrs[0], VIRTIO_BLK_T_OUT, 0);
  const Sent flush = send(VIRTIO_BLK_T_FLUSH, 0, {});  // the device keeps going
  notify_and_expect_used(2);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{head, 0}));
  EXPECT_EQ(status_of(flush), VIRTIO_BLK_S_OK);
  EXPECT_EQ(image_.contents(), before);
  EXPECT_TRUE(irq_.errors.empty());
  EXPECT_EQ(device_->stats().errors, 1u);
  EXPECT_EQ(device_->stats().written_bytes, 0u);

  // A zero-length writable buffer is no status byte either.
  const std::uint16_t empty = driver_.add_chain({{16, false}, {0, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{empty, 0}));
}

TEST_F(VirtioBlockTest, DataOutsideGuestMemoryIsADeviceError) {
  activate();
  const std::uint64_t past = MockVirtqDriver::kMemorySize - 256;  // 512 bytes from here cross the end
  const GuestAddress header = driver_.alloc_buffer(16);
  const GuestAddress status = driver_.alloc_buffer(1);
  write_header(header, VIRTIO_BLK_T_IN, 0);
  driver_.write_desc(0, {header.value, 16, kDescFlagNext, 1});
  driver_.write_desc(1, {past, 512, kDescFlagNext | kDescFlagWrite, 2});
  driver_.write_desc(2, {status.value, 1, kDescFlagWrite, 0});
  driver_.offer(0);
  notify(0);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("outside guest memory"), std::string::npos) << irq_.errors[0];
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(irq_.used, 0);

  // Stopped: a good request is not served until reset.
  const Sent sent = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify(0);
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(status_of(sent), kNoStatus);
  EXPECT_EQ(irq_.errors.size(), 1u);
}

TEST_F(VirtioBlockTest, DescriptorLoopIsADeviceError) {
  activate();
  const GuestAddress header = driver_.alloc_buffer(16);
  write_header(header, VIRTIO_BLK_T_FLUSH, 0);
  driver_.write_desc(0, {header.value, 16, kDescFlagNext, 1});
  driver_.write_desc(1, {header.value, 16, kDescFlagNext, 0});
  driver_.offer(0);
  notify(0);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("loop"), std::string::npos) << irq_.errors[0];
  EXPECT_EQ(driver_.used_idx(), 0);
}

TEST_F(VirtioBlockTest, ResetAfterADeviceErrorStartsAfresh) {
  activate();
  driver_.write_desc(0, {0, 16, kDescFlagNext, 0});  // loops on itself
  driver_.offer(0);
  notify(0);
  ASSERT_EQ(irq_.errors.size(), 1u);

  device_->reset();
  for (Queue& queue : queues_) queue.reset();
  driver_ = MockVirtqDriver(kQueueSize);
  activate();
  const Sent sent = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(irq_.errors.size(), 1u);
}

TEST_F(VirtioBlockTest, SeveralRequestsInOneNotify) {
  activate();
  const Sent a = send(VIRTIO_BLK_T_IN, 0, {{512, true}});
  const Sent b = send(VIRTIO_BLK_T_OUT, 10, {{512, false}});
  const auto data = random_bytes(512, 5);
  ASSERT_TRUE(driver_.memory().write(b.addrs[1], data).has_value());
  const Sent c = send(VIRTIO_BLK_T_IN, 10, {{512, true}});  // after b: sees b's data
  const Sent d = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(4);
  EXPECT_EQ(irq_.used, 1);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{a.head, 513}));
  EXPECT_EQ(driver_.used_elem(1), (VirtqUsedElem{b.head, 1}));
  EXPECT_EQ(driver_.used_elem(2), (VirtqUsedElem{c.head, 513}));
  EXPECT_EQ(driver_.used_elem(3), (VirtqUsedElem{d.head, 1}));
  for (const Sent* sent : {&a, &b, &c, &d}) EXPECT_EQ(status_of(*sent), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(c.addrs[1], 512), data);
}

TEST_F(VirtioBlockTest, IndirectDescriptors) {
  activate();
  const Sent read = send(VIRTIO_BLK_T_IN, 4, {{512, true}, {512, true}}, /*indirect=*/true);
  const Sent write = send(VIRTIO_BLK_T_OUT, 20, {{1024, false}}, /*indirect=*/true);
  const auto data = random_bytes(1024, 11);
  ASSERT_TRUE(driver_.memory().write(write.addrs[1], data).has_value());
  notify_and_expect_used(2);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{read.head, 1025}));
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status_of(write), VIRTIO_BLK_S_OK);
  const auto file = image_.contents();
  EXPECT_EQ(bytes_at(read.addrs[1], 512), slice_of(file, 4 * kSector, 512));
  EXPECT_EQ(bytes_at(read.addrs[2], 512), slice_of(file, 5 * kSector, 512));
  EXPECT_EQ(slice_of(file, 20 * kSector, 1024), data);
}

TEST_F(VirtioBlockTest, EventIdxSuppressesTheInterrupt) {
  activate(/*event_idx=*/true);
  driver_.set_used_event(5);  // the driver wants to hear only once used idx passes 5
  send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(irq_.used, 0);
  EXPECT_EQ(driver_.avail_event(), 1);  // and asks to be notified of the next chain

  driver_.set_used_event(1);  // now: notify when the entry at position 1 is used
  send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(irq_.used, 1);
}

TEST_F(VirtioBlockTest, NoInterruptWhenNothingWasUsed) {
  activate();
  notify(0);
  EXPECT_EQ(irq_.used, 0);
  EXPECT_EQ(driver_.used_idx(), 0);
}

TEST_F(VirtioBlockTest, NotifyBeforeActivateIsIgnored) {
  driver_.configure(queues_[0]);
  const Sent sent = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify(0);
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(status_of(sent), kNoStatus);
  EXPECT_EQ(device_->stats().requests, 0u);
}

TEST_F(VirtioBlockTest, NotifyAfterResetIsIgnored) {
  activate();
  device_->reset();
  const Sent sent = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify(0);
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(status_of(sent), kNoStatus);
  EXPECT_EQ(irq_.used, 0);
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, NotifyOfAnotherQueueIsIgnored) {
  activate();
  send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify(1);
  EXPECT_EQ(driver_.used_idx(), 0);
}

TEST_F(VirtioBlockTest, ActivateWithTheWrongNumberOfQueuesFails) {
  std::vector<Queue> two(2);
  EXPECT_FALSE(device_->activate(driver_.memory(), two, device_->features(), irq_).has_value());
}

TEST_F(VirtioBlockTest, TruncatedImageIsAHostIoError) {
  activate();
  ASSERT_EQ(::truncate(image_.path().c_str(), static_cast<off_t>(8 * kSector)), 0);
  const Sent sent = send(VIRTIO_BLK_T_IN, 6, {{2048, true}});  // two sectors exist, two do not
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(sent), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(last_used().len, 2 * kSector + 1);  // what reached guest memory, and the status
  EXPECT_TRUE(irq_.errors.empty());
  EXPECT_EQ(device_->stats().errors, 1u);
}

TEST_F(VirtioBlockTest, ImageWithATailExposesWholeSectorsOnly) {
  TempFile odd(test::pattern(3 * kSector + 100));
  open_device({odd.path(), false, "odd"});
  EXPECT_EQ(device_->capacity_sectors(), 3u);
  activate();
  const Sent last = send(VIRTIO_BLK_T_IN, 2, {{512, true}});
  const Sent tail = send(VIRTIO_BLK_T_IN, 3, {{512, true}});
  notify_and_expect_used(2);
  EXPECT_EQ(status_of(last), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status_of(tail), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlockTest, StatsCountRequests) {
  activate();
  send(VIRTIO_BLK_T_IN, 0, {{1024, true}});
  send(VIRTIO_BLK_T_OUT, 8, {{512, false}});
  send(VIRTIO_BLK_T_OUT, 8, {{512, false}, {512, false}});
  send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(4);  // (the 16-entry descriptor table holds about this many)
  send(VIRTIO_BLK_T_GET_ID, 0, {{20, true}});
  send(VIRTIO_BLK_T_IN, kImageSectors, {{512, true}});  // out of range
  send(VIRTIO_BLK_T_DISCARD, 0, {});                    // unsupported
  notify_and_expect_used(3);
  const BlockStats stats = device_->stats();
  EXPECT_EQ(stats.requests, 7u);
  EXPECT_EQ(stats.read_bytes, 1024u);
  EXPECT_EQ(stats.written_bytes, 1536u);
  EXPECT_EQ(stats.flushes, 1u);
  EXPECT_EQ(stats.errors, 2u);
}

// ---- I/O off the event loop ------------------------------------------------------------------------

TEST_F(VirtioBlockTest, NotifyReturnsWhileTheImageIsStuckAndTheRequestCompletesAfter) {
  Gate gate;
  open_device({image_.path(), false, "test-serial"}, gate.hook());
  activate();
  const Sent read = send(VIRTIO_BLK_T_IN, 2, {{1024, true}});
  EXPECT_LT(timed([&] { device_->notify(0); }), kPrompt);
  ASSERT_TRUE(gate.wait_entered(1));

  // The worker is stuck in the image; the rest of the device answers at once.
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(status_of(read), kNoStatus);
  EXPECT_EQ(irq_.used, 0);
  EXPECT_EQ(device_->stats().requests, 0u);
  std::array<std::uint8_t, 8> capacity{};
  EXPECT_LT(timed([&] { device_->read_config(0, capacity); }), kPrompt);
  const Sent flush = send(VIRTIO_BLK_T_FLUSH, 0, {});  // queued behind the stuck read
  EXPECT_LT(timed([&] { device_->notify(0); }), kPrompt);
  EXPECT_EQ(driver_.used_idx(), 0);

  gate.open();
  settle();
  ASSERT_EQ(driver_.used_idx(), 2);
  EXPECT_EQ(driver_.used_elem(0), (VirtqUsedElem{read.head, 1024 + 1}));
  EXPECT_EQ(driver_.used_elem(1), (VirtqUsedElem{flush.head, 1}));
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_OK);
  EXPECT_EQ(status_of(flush), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(read.addrs[1], 1024), slice_of(image_.contents(), 2 * kSector, 1024));
  EXPECT_GE(irq_.used, 1);
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, ResetDuringAnInFlightReadWritesNothingAfterIt) {
  Gate gate;
  open_device({image_.path(), false, "test-serial"}, gate.hook());
  activate();
  const Sent read = send(VIRTIO_BLK_T_IN, 2, {{1024, true}});
  device_->notify(0);
  ASSERT_TRUE(gate.wait_entered(1));  // the read is on the worker

  EXPECT_LT(timed([&] { device_->reset(); }), kPrompt);  // does not wait for the image
  for (Queue& queue : queues_) queue.reset();
  gate.open();
  device_->drain();

  // Not a byte of data, no status, no used entry, no interrupt: the driver owns those buffers again.
  EXPECT_EQ(bytes_at(read.addrs[1], 1024), repeat(kUnwritten, 1024));
  EXPECT_EQ(status_of(read), kNoStatus);
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(irq_.used, 0);
  EXPECT_TRUE(irq_.errors.empty());
  EXPECT_EQ(device_->stats().requests, 0u);

  // And the drive works for the next activation.
  driver_ = MockVirtqDriver(kQueueSize);
  activate();
  const Sent again = send(VIRTIO_BLK_T_IN, 2, {{1024, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(again), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(again.addrs[1], 1024), slice_of(image_.contents(), 2 * kSector, 1024));
}

TEST_F(VirtioBlockTest, ResetAndReactivationDuringAnInFlightWriteLeaveTheNewQueueAlone) {
  Gate gate;
  open_device({image_.path(), false, "test-serial"}, gate.hook());
  activate();
  const Sent write = send(VIRTIO_BLK_T_OUT, 4, {{512, false}});
  ASSERT_TRUE(driver_.memory().write(write.addrs[1], random_bytes(512, 8)).has_value());
  const Sent behind = send(VIRTIO_BLK_T_IN, 0, {{512, true}});  // waiting behind it
  device_->notify(0);
  ASSERT_TRUE(gate.wait_entered(1));

  // The guest resets and sets the device up again, in other memory (the old one is freed: ASan
  // reports any late access), while the write is still on the worker.
  device_->reset();
  for (Queue& queue : queues_) queue.reset();
  driver_ = MockVirtqDriver(kQueueSize);
  test::fill(driver_.memory(), write.addrs.back(), 1, kNoStatus);  // where the old status byte was
  test::fill(driver_.memory(), behind.addrs[1], 512, kUnwritten);  // where the old read would land
  activate();
  gate.open();
  settle();

  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(driver_.read<std::uint8_t>(write.addrs.back()), kNoStatus);
  EXPECT_EQ(bytes_at(behind.addrs[1], 512), repeat(kUnwritten, 512));
  EXPECT_EQ(irq_.used, 0);
  EXPECT_EQ(device_->stats().requests, 0u);

  const Sent fresh = send(VIRTIO_BLK_T_FLUSH, 0, {});
  notify_and_expect_used(1);
  EXPECT_EQ(last_used(), (VirtqUsedElem{fresh.head, 1}));
  EXPECT_EQ(status_of(fresh), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlockTest, DestroyedWhileTheImageIsStuckJoinsTheWorker) {
  Gate gate;
  open_device({image_.path(), false, "test-serial"}, gate.hook());
  activate();
  const Sent read = send(VIRTIO_BLK_T_IN, 0, {{512, true}});
  send(VIRTIO_BLK_T_FLUSH, 0, {});
  device_->notify(0);
  ASSERT_TRUE(gate.wait_entered(1));
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate.open();
  });
  device_.reset();  // waits for the read in progress, drops the flush, joins
  opener.join();
  EXPECT_EQ(driver_.used_idx(), 0);
  EXPECT_EQ(status_of(read), kNoStatus);
  EXPECT_EQ(bytes_at(read.addrs[1], 512), repeat(kUnwritten, 512));
  EXPECT_EQ(irq_.used, 0);
}

TEST_F(VirtioBlockTest, ADriverCannotMakeTheDeviceHoldMoreThanARingWhileTheImageIsStuck) {
  // A hostile driver keeps moving avail idx (re-offering the same chain) while the worker hangs:
  // the device takes at most the queue size, and resumes once requests complete.
  Gate gate;
  open_device({image_.path(), false, "test-serial"}, gate.hook());
  activate();
  const Sent flush = send(VIRTIO_BLK_T_FLUSH, 0, {});
  device_->notify(0);
  ASSERT_TRUE(gate.wait_entered(1));
  const std::uint16_t first = queues_[0].next_avail();
  for (int i = 0; i < 1000; ++i) {
    driver_.offer(flush.head);
    device_->notify(0);
    if (driver_.outstanding() >= kQueueSize) driver_.set_avail_idx(queues_[0].next_avail());  // keep it valid
  }
  EXPECT_LE(static_cast<std::uint16_t>(queues_[0].next_avail() - first), kQueueSize);
  EXPECT_TRUE(irq_.errors.empty());
  gate.open();
  settle();
  EXPECT_EQ(driver_.used_idx(), queues_[0].next_avail());  // everything taken came back
  EXPECT_TRUE(irq_.errors.empty());
}

// ---- work budget ------------------------------------------------------------------------------------

// 10 000 reads from a driver that keeps its ring full and notifies only when EVENT_IDX says so: each
// notify and each deferred run takes at most kNotifyBudget chains, the worker resumes a pump that
// stopped at a full ring, and every request completes once with the right data.
TEST_F(VirtioBlockTest, TenThousandRequestsAreBudgetedAndNoneIsLost) {
  constexpr std::uint16_t kBig = Queue::kMaxSize;
  constexpr std::uint32_t kRequests = 10'000;
  driver_ = MockVirtqDriver(kBig);
  activate(/*event_idx=*/true);
  driver_.set_used_event(0xffff);  // interrupts do not matter here
  const auto file = image_.contents();
  std::vector<Sent> sent;  // by avail position (= request number)
  std::uint32_t completed = 0;
  int kicks = 0;
  const auto top_up = [&] {
    const std::uint16_t old = driver_.avail_idx();
    while (sent.size() < kRequests && driver_.outstanding() < kBig) {
      const auto n = static_cast<std::uint32_t>(sent.size());
      sent.push_back(send(VIRTIO_BLK_T_IN, n % kImageSectors, {{512, true}}, /*indirect=*/true));
    }
    if (driver_.avail_idx() != old && driver_.kick_needed(old, true)) {
      ++kicks;
      const std::uint16_t before = queues_[0].next_avail();
      device_->notify(0);
      EXPECT_LE(static_cast<std::uint16_t>(queues_[0].next_avail() - before), kNotifyBudget);
    }
  };
  top_up();
  for (int round = 0; completed < kRequests; ++round) {
    ASSERT_LT(round, 1'000'000) << "stalled at " << completed;
    device_->drain();
    for (; completed != kRequests && static_cast<std::uint16_t>(completed) != driver_.used_idx(); ++completed) {
      const VirtqUsedElem used = driver_.used_elem(static_cast<std::uint16_t>(completed));
      const Sent& request = sent[completed];  // one worker: completions come in order
      ASSERT_EQ(used, (VirtqUsedElem{request.head, 513})) << completed;
      ASSERT_EQ(status_of(request), VIRTIO_BLK_S_OK);
      ASSERT_EQ(bytes_at(request.addrs[1], 512), slice_of(file, (completed % kImageSectors) * kSector, 512));
    }
    top_up();
    const std::uint16_t before = queues_[0].next_avail();
    io_.restart();
    io_.poll_one();  // one deferred pump, if any
    EXPECT_LE(static_cast<std::uint16_t>(queues_[0].next_avail() - before), kNotifyBudget);
  }
  settle();
  EXPECT_EQ(completed, kRequests);
  EXPECT_EQ(device_->stats().requests, kRequests);
  EXPECT_EQ(device_->stats().errors, 0u);
  EXPECT_LT(kicks, static_cast<int>(kRequests / kNotifyBudget));
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioBlockTest, DestroyedWithADeferredPumpQueued) {
  driver_ = MockVirtqDriver(Queue::kMaxSize);
  activate();
  for (unsigned i = 0; i < 2 * kNotifyBudget; ++i) send(VIRTIO_BLK_T_FLUSH, 0, {}, /*indirect=*/true);
  device_->notify(0);
  device_->drain();
  EXPECT_EQ(driver_.used_idx(), kNotifyBudget);
  device_.reset();
  io_.restart();
  EXPECT_EQ(io_.poll(), 1u);  // the pump that was queued runs, and does nothing (ASan: no use after free)
  EXPECT_EQ(driver_.used_idx(), kNotifyBudget);
}

}  // namespace
// ---- an empty drive and attach (a warm-start template's drives, runtime/warm_start.h) -------------

TEST_F(VirtioBlockTest, EmptyDriveHasNoCapacityAndServesNoBlock) {
  device_.reset();
  auto empty = BlockDevice::open_empty({"", true, "rootfs"}, io_.get_executor());
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  device_ = std::move(*empty);
  EXPECT_EQ(device_->capacity_sectors(), 0u);
  EXPECT_NE(device_->features() & (1ULL << VIRTIO_BLK_F_RO), 0u);  // its mode is the run's, from the start
  std::array<std::uint8_t, 8> capacity{};
  device_->read_config(0, capacity);
  EXPECT_EQ(capacity, (std::array<std::uint8_t, 8>{}));
  activate();
  const Sent read = send(VIRTIO_BLK_T_IN, 0, {{512, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(bytes_at(read.addrs[1], 512), repeat(kUnwritten, 512));
}

TEST_F(VirtioBlockTest, AttachGivesAnEmptyDriveItsImageAndAnnouncesTheNewCapacity) {
  device_.reset();
  auto empty = BlockDevice::open_empty({"", false, "rootfs"}, io_.get_executor());
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  device_ = std::move(*empty);
  activate();
  ASSERT_EQ(irq_.config, 0);
  ASSERT_TRUE(device_->attach(image_.path()).has_value());
  EXPECT_EQ(irq_.config, 1);  // a configuration change notification (virtio 1.2 §4.2.2)
  EXPECT_EQ(device_->capacity_sectors(), kImageSectors);
  std::array<std::uint8_t, 8> raw{};
  device_->read_config(0, raw);  // §5.2.4: le64 capacity at offset 0
  std::uint64_t capacity = 0;
  std::memcpy(&capacity, raw.data(), sizeof(capacity));
  EXPECT_EQ(capacity, kImageSectors);
  const Sent read = send(VIRTIO_BLK_T_IN, 5, {{1024, true}});
  notify_and_expect_used(1);
  EXPECT_EQ(status_of(read), VIRTIO_BLK_S_OK);
  EXPECT_EQ(bytes_at(read.addrs[1], 1024), slice_of(image_.contents(), 5 * kSector, 1024));
  EXPECT_EQ(device_->state(), (BlockDevice::State{kImageSectors, false}));
  // Only once, and only on an empty drive.
  EXPECT_ERROR_CONTAINS(device_->attach(image_.path()), "already has an image");
}

TEST_F(VirtioBlockTest, AttachRefusesAMissingOrEmptyImageAndStaysEmpty) {
  device_.reset();
  auto empty = BlockDevice::open_empty({"", false, "rootfs"}, io_.get_executor());
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  device_ = std::move(*empty);
  EXPECT_ERROR_CONTAINS(device_->attach("/nonexistent/image.ext4"), "/nonexistent/image.ext4");
  const TempFile zero(std::span<const std::byte>{});
  EXPECT_ERROR_CONTAINS(device_->attach(zero.path()), "smaller than one");
  EXPECT_EQ(device_->capacity_sectors(), 0u);
  EXPECT_TRUE(device_->attach(image_.path()).has_value());  // still attachable
}

}  // namespace microvm::devices::virtio

// The snapshot sections beside the vCPUs (vmm/snapshot/machine_state.h): VmResources, the memory
// layout and every device's State round-trip through their encoding byte for byte, and a section
// cut short anywhere, or holding a value no microvm writes, is refused with a message, never
// misread. Guest RAM goes to a sparse memory file and comes back as a private mapping of it
// (GuestMemory::save_to / from_file); a truncated memory file is refused up front.
#include "vmm/snapshot/machine_state.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_ids.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/test_support.h"
#include "vmm/snapshot/state_file.h"

namespace microvm::snapshot {
namespace {

vmm::VmResources sample_resources() {
  vmm::VmResources r;
  r.boot_source = {"/k/vmlinux", "console=ttyS0 quiet", "/k/initrd"};
  r.machine_config = {2, 256, false};
  r.drives = {{"rootfs", "/img/root.ext4", true, false}, {"data", "/img/data", false, true}};
  r.network_interfaces = {{"eth0", "tap0", "02:00:00:00:00:01", "10.0.0.2/24", "10.0.0.1", "1.1.1.1"},
                          {"eth1", "tap1", std::nullopt, std::nullopt, std::nullopt, std::nullopt}};
  r.container = vmm::ContainerSpec{{"sh", "-c", "echo hi"}, {"A=1"}, "/work", "1000:1000", "box"};
  r.container->additional_gids = {50, 100};
  r.container->files = {{"/etc/hosts", "127.0.0.1 box\n", 0644}, {"/run/.containerenv", "", 0600}};
  r.container->read_only_root = true;
  r.console = vmm::ConsoleKind::kVirtio;
  r.warm_template = true;
  return r;
}

DevicesState sample_devices() {
  DevicesState s;
  s.serial = {0x01, 0x03, 0x0b, 0x5a, 0x0c, 0x00, true, false, true, {'a', 'b'}};
  s.i8042 = {0x55, 0x60, 0x47};
  s.acpi_pm = {0x0121, 0x0400};
  s.status_port = {true};
  VirtioState blk;
  blk.device_id = VIRTIO_ID_BLOCK;
  blk.transport.status = 0xf;
  blk.transport.driver_features = 0x1'3000'0000ULL;
  blk.transport.activated = true;
  blk.transport.interrupt_status = 1;
  blk.transport.config_generation = 3;
  blk.transport.queue_configs = {{128, true, 0x1000, 0x2000, 0x3000}};
  blk.transport.queues = {{128, true, 0x1000, 0x2000, 0x3000, true, true, 65535, 65534, 65530}};
  blk.device = devices::virtio::BlockDevice::State{2048, true};
  VirtioState net;
  net.device_id = VIRTIO_ID_NET;
  net.transport.queue_configs.resize(2);
  net.transport.queues.resize(2);
  net.device = devices::virtio::NetDevice::State{{0x02, 0x4d, 0x56, 0, 0, 1}};
  VirtioState console;
  console.device_id = VIRTIO_ID_CONSOLE;
  console.transport.queue_configs.resize(2);
  console.transport.queues.resize(2);
  console.device = devices::virtio::ConsoleDevice::State{{'x', 'y', 'z'}, 80, 25};
  s.virtio = {blk, net, console};
  return s;
}

template <typename T>
std::vector<std::byte> encoded(const T& value) {
  Encoder out;
  encode(out, value);
  return out.take();
}

template <typename Decode>
auto decoded(std::span<const std::byte> bytes, Decode decode) {
  Decoder in(bytes, "test section");
  auto value = decode(in);
  if (value) {
    auto finished = in.finish();
    if (!finished) return decltype(value)(std::unexpected(finished.error()));
  }
  return value;
}

// Every proper prefix of `bytes` is refused, and so is `bytes` with a byte more.
template <typename Decode>
void expect_every_truncation_refused(const std::vector<std::byte>& bytes, Decode decode) {
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(decoded(std::span(bytes).first(size), decode).has_value()) << "a prefix of " << size << " bytes";
  }
  std::vector<std::byte> longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_ERROR_CONTAINS(decoded(longer, decode), "unexpected bytes at the end");
}

TEST(SnapshotMachineState, ResourcesRoundTrip) {
  const vmm::VmResources r = sample_resources();
  const auto bytes = encoded(r);
  const auto back = decoded(bytes, decode_resources);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, r);
  expect_every_truncation_refused(bytes, decode_resources);

  vmm::VmResources plain;  // defaults: no container, serial console, no devices
  const auto plain_back = decoded(encoded(plain), decode_resources);
  ASSERT_TRUE(plain_back.has_value()) << plain_back.error().message;
  EXPECT_EQ(*plain_back, plain);
}

TEST(SnapshotMachineState, ResourcesOutOfRangeAreRefused) {
  vmm::VmResources r = sample_resources();
  r.machine_config.vcpu_count = 99;
  EXPECT_ERROR_CONTAINS(decoded(encoded(r), decode_resources), "99 vCPUs");
  r = sample_resources();
  r.machine_config.mem_size_mib = 1;
  EXPECT_ERROR_CONTAINS(decoded(encoded(r), decode_resources), "1 MiB");
  r = sample_resources();
  r.drives[1].is_root_device = true;  // two root drives
  EXPECT_FALSE(decoded(encoded(r), decode_resources).has_value());
  r = sample_resources();
  r.drives[1].drive_id = "rootfs";  // the same id twice
  EXPECT_ERROR_CONTAINS(decoded(encoded(r), decode_resources), "same id");
  std::vector<std::byte> bytes = encoded(sample_resources());
  bytes[bytes.size() - 2] = std::byte{2};  // the console kind (warm_template follows it)
  EXPECT_ERROR_CONTAINS(decoded(bytes, decode_resources), "console kind 2");
  r = sample_resources();
  r.container.reset();
  r.warm_template = true;  // a template is always container mode
  EXPECT_ERROR_CONTAINS(decoded(encoded(r), decode_resources), "warm-start template without container mode");
}

TEST(SnapshotMachineState, MemoryRegionsRoundTripAndEmptyOrWrappingOnesAreRefused) {
  const std::vector<MemoryRegionState> regions{{0, 0xc000'0000, 0}, {1ULL << 32, 0x4000'0000, 0xc000'0000}};
  const auto bytes = encoded(regions);
  const auto back = decoded(bytes, decode_memory_regions);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, regions);
  expect_every_truncation_refused(bytes, decode_memory_regions);
  EXPECT_ERROR_CONTAINS(decoded(encoded(std::vector<MemoryRegionState>{}), decode_memory_regions), "no guest memory");
  EXPECT_ERROR_CONTAINS(decoded(encoded(std::vector<MemoryRegionState>{{0, 0, 0}}), decode_memory_regions), "empty");
  EXPECT_ERROR_CONTAINS(
      decoded(encoded(std::vector<MemoryRegionState>{{~0ULL - 10, 0x1000, 0}}), decode_memory_regions), "wraps");
  EXPECT_ERROR_CONTAINS(
      decoded(encoded(std::vector<MemoryRegionState>(kMaxMemoryRegions + 1, {0, 1, 0})), decode_memory_regions),
      "memory regions");
}

TEST(SnapshotMachineState, DevicesRoundTrip) {
  const DevicesState s = sample_devices();
  const auto bytes = encoded(s);
  const auto back = decoded(bytes, decode_devices);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, s);
  expect_every_truncation_refused(bytes, decode_devices);
}

TEST(SnapshotMachineState, DevicesNoMicrovmWritesAreRefused) {
  DevicesState s = sample_devices();
  s.virtio[1].device_id = 9;  // not a device microvm has
  EXPECT_ERROR_CONTAINS(decoded(encoded(s), decode_devices), "virtio device type 9");
  s = sample_devices();
  s.serial.input.assign(devices::Serial::kInputCapacity + 1, 'x');
  EXPECT_FALSE(decoded(encoded(s), decode_devices).has_value());
  s = sample_devices();
  s.virtio[0].transport.queues.resize(kMaxQueues + 1);
  EXPECT_ERROR_CONTAINS(decoded(encoded(s), decode_devices), "queues");
  s = sample_devices();
  std::get<devices::virtio::ConsoleDevice::State>(s.virtio[2].device)
      .input.assign(devices::virtio::ConsoleDevice::kInputCapacity + 1, 'x');
  EXPECT_FALSE(decoded(encoded(s), decode_devices).has_value());
  // A boolean that is neither 0 nor 1 (the serial's fifo_enabled, byte 6).
  std::vector<std::byte> bytes = encoded(sample_devices());
  bytes[6] = std::byte{7};
  EXPECT_ERROR_CONTAINS(decoded(bytes, decode_devices), "boolean");
}

// ---- guest memory and its file -------------------------------------------------------------------

class MemoryFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("microvm-memfile-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

TEST_F(MemoryFileTest, RamGoesToASparseFileAndComesBackPrivately) {
  const std::array<MemoryRange, 2> ranges{MemoryRange{GuestAddress(0), 8 << 20},
                                          MemoryRange{GuestAddress(1ULL << 32), 4 << 20}};
  auto memory = GuestMemory::create(ranges);
  ASSERT_TRUE(memory.has_value());
  const auto a = test::pattern(10000, 3);
  const auto b = test::pattern(4096, 9);
  ASSERT_TRUE(memory->write(GuestAddress(0x12345), a).has_value());
  ASSERT_TRUE(memory->write(GuestAddress((1ULL << 32) + (3 << 20)), b).has_value());

  auto file = ReplacementFile::create(path("mem"));
  ASSERT_TRUE(file.has_value());
  const auto saved = memory->save_to(file->fd(), "memory file");
  ASSERT_TRUE(saved.has_value()) << saved.error().message;
  ASSERT_TRUE(file->commit().has_value());
  ASSERT_EQ(saved->size(), 2u);
  EXPECT_EQ((*saved)[0].file_offset, 0u);
  EXPECT_EQ((*saved)[1].file_offset, 8u << 20);
  struct stat st {};
  ASSERT_EQ(::stat(path("mem").c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 12u << 20);
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, 1u << 20) << "the zero pages should be holes";

  UniqueFd fd(::open(path("mem").c_str(), O_RDONLY | O_CLOEXEC));
  auto restored = GuestMemory::from_file(*saved, fd.get(), "memory file");
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(test::guest_bytes(*restored, GuestAddress(0x12345), a.size()), a);
  EXPECT_EQ(test::guest_bytes(*restored, GuestAddress((1ULL << 32) + (3 << 20)), b.size()), b);
  EXPECT_EQ(test::guest_obj<std::uint64_t>(*restored, GuestAddress(0x800000 - 8)), 0u);
  // Writes land in the process, not the file.
  ASSERT_TRUE(restored->write_obj(GuestAddress(0x12345), std::uint64_t{0}).has_value());
  auto again = GuestMemory::from_file(*saved, fd.get(), "memory file");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(test::guest_bytes(*again, GuestAddress(0x12345), a.size()), a);
}

TEST_F(MemoryFileTest, ATruncatedOrMisalignedFileIsRefused) {
  const std::array<GuestMemory::FileRange, 1> ranges{GuestMemory::FileRange{MemoryRange{GuestAddress(0), 2 << 20}, 0}};
  {
    UniqueFd fd(::open(path("short").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_EQ(::ftruncate(fd.get(), (2 << 20) - 4096), 0);
    EXPECT_ERROR_CONTAINS(GuestMemory::from_file(ranges, fd.get(), "memory file M"), "memory file M is truncated");
    const std::array<GuestMemory::FileRange, 1> misaligned{
        GuestMemory::FileRange{MemoryRange{GuestAddress(0), 4096}, 100}};
    EXPECT_ERROR_CONTAINS(GuestMemory::from_file(misaligned, fd.get(), "memory file M"), "not page-aligned");
  }
  std::filesystem::create_directory(path("dir"));
  UniqueFd dir(::open(path("dir").c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_ERROR_CONTAINS(GuestMemory::from_file(ranges, dir.get(), "memory file D"), "not a regular file");
}

TEST_F(MemoryFileTest, AReplacementFileLeavesTheOldOneUntilCommitted) {
  ASSERT_TRUE(write_file(path("state"), test::to_bytes("old")).has_value());
  {
    auto file = ReplacementFile::create(path("state"));
    ASSERT_TRUE(file.has_value());
    ASSERT_TRUE(file->write(test::to_bytes("new but never committed")).has_value());
  }
  auto read = read_state_file(path("state"));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(test::text_of(*read), "old");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u) << "the uncommitted file is removed";
  ASSERT_TRUE(write_file(path("state"), test::to_bytes("new")).has_value());
  read = read_state_file(path("state"));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(test::text_of(*read), "new");
}

}  // namespace
}  // namespace microvm::snapshot

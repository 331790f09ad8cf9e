#include "devices/i8042.h"

#include "base/error.h"

namespace microvm::devices {

namespace {
// Commands and bits (IBM PC/AT technical reference; Linux drivers/input/serio/i8042.h).
constexpr std::uint8_t kCmdReadControl = 0x20;
constexpr std::uint8_t kCmdWriteControl = 0x60;
constexpr std::uint8_t kCmdAuxTest = 0xa9;
constexpr std::uint8_t kCmdSelfTest = 0xaa;
constexpr std::uint8_t kCmdKbdTest = 0xab;
constexpr std::uint8_t kCmdWriteOutputPort = 0xd1;
constexpr std::uint8_t kCmdPulseReset = 0xfe;
constexpr std::uint8_t kSelfTestPassed = 0x55;
constexpr std::uint8_t kInterfaceTestPassed = 0x00;
constexpr std::uint8_t kOutputPortResetBit = 0x01;  // output port bit 0 low = CPU reset
constexpr std::uint8_t kStatusOutputFull = 0x01;
constexpr std::uint8_t kStatusSystemFlag = 0x04;  // set once the self-test passed (always, here)
}  // namespace

I8042::State I8042::state() const {
  std::lock_guard lock(mutex_);
  return State{output_, pending_command_, control_};
}

Result<void> I8042::restore(const State& state) {
  if (state.pending_command && *state.pending_command != kCmdWriteControl &&
      *state.pending_command != kCmdWriteOutputPort) {
    return fail("i8042: command {:#04x} does not wait for a data byte", *state.pending_command);
  }
  std::lock_guard lock(mutex_);
  output_ = state.output;
  pending_command_ = state.pending_command;
  control_ = state.control;
  return {};
}

void I8042::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  std::uint8_t value = 0xff;
  if (offset == kCommandOffset) {
    // The input buffer is always empty (bit 1 clear), so `reboot=k` never waits.
    value = static_cast<std::uint8_t>(kStatusSystemFlag | (output_ ? kStatusOutputFull : 0));
  } else if (offset == kDataOffset) {
    value = output_.value_or(0);
    output_.reset();
  }
  data[0] = value;
  for (std::size_t i = 1; i < data.size(); ++i) data[i] = 0;
}

void I8042::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (data.empty()) return;
  bool reset = false;
  {
    std::lock_guard lock(mutex_);
    const std::uint8_t value = data[0];
    if (offset == kCommandOffset) {
      pending_command_.reset();
      switch (value) {
        case kCmdReadControl: output_ = control_; break;
        case kCmdWriteControl:
        case kCmdWriteOutputPort: pending_command_ = value; break;
        case kCmdSelfTest: output_ = kSelfTestPassed; break;
        case kCmdKbdTest:
        case kCmdAuxTest: output_ = kInterfaceTestPassed; break;
        case kCmdPulseReset: reset = true; break;
        default: break;  // enable/disable ports and the rest: accepted, nothing to do
      }
    } else if (offset == kDataOffset && pending_command_) {
      if (*pending_command_ == kCmdWriteControl) control_ = value;
      if (*pending_command_ == kCmdWriteOutputPort && (value & kOutputPortResetBit) == 0) reset = true;
      pending_command_.reset();
    }
  }
  if (reset) on_reset_();
}

}  // namespace microvm::devices

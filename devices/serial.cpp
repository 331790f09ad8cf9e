#include "devices/serial.h"

#include "base/error.h"

namespace microvm::devices {

namespace {
// Bits, PC16550D datasheet §8.
constexpr std::uint8_t kIerReceivedData = 0x01;  // IER: received data available
constexpr std::uint8_t kIerThrEmpty = 0x02;      // IER: transmitter holding register empty
constexpr std::uint8_t kIerMask = 0x0f;
constexpr std::uint8_t kIirNoInterrupt = 0x01;
constexpr std::uint8_t kIirThrEmpty = 0x02;
constexpr std::uint8_t kIirReceivedData = 0x04;
constexpr std::uint8_t kIirFifoEnabled = 0xc0;
constexpr std::uint8_t kFcrEnable = 0x01;
constexpr std::uint8_t kFcrClearReceive = 0x02;
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kMcrLoopback = 0x10;
constexpr std::uint8_t kLsrDataReady = 0x01;
constexpr std::uint8_t kLsrThrEmpty = 0x20;
constexpr std::uint8_t kLsrTransmitterEmpty = 0x40;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr std::uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08;
constexpr std::uint8_t kMcrMask = 0x1f;  // MCR bits 5-7 are always 0 on a 16550A
}  // namespace

Serial::State Serial::state() const {
  std::lock_guard lock(mutex_);
  return State{ier_,          lcr_,
               mcr_,          scratch_,
               dll_,          dlm_,
               fifo_enabled_, thr_empty_interrupt_,
               irq_level_,    std::vector<std::uint8_t>(input_.begin(), input_.end())};
}

Result<void> Serial::restore(const State& state) {
  if ((state.ier & ~kIerMask) != 0) return fail("serial: IER {:#04x} has bits a 16550A does not have", state.ier);
  if ((state.mcr & ~kMcrMask) != 0) return fail("serial: MCR {:#04x} has bits a 16550A does not have", state.mcr);
  if (state.input.size() > kInputCapacity) {
    return fail("serial: {} bytes of pending input, the device buffers at most {}", state.input.size(), kInputCapacity);
  }
  std::lock_guard lock(mutex_);
  ier_ = state.ier;
  lcr_ = state.lcr;
  mcr_ = state.mcr;
  scratch_ = state.scratch;
  dll_ = state.dll;
  dlm_ = state.dlm;
  fifo_enabled_ = state.fifo_enabled;
  thr_empty_interrupt_ = state.thr_empty_interrupt;
  irq_level_ = state.irq_level;
  input_.assign(state.input.begin(), state.input.end());
  return {};
}

void Serial::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  data[0] = offset < kRegisterCount ? read_register(static_cast<std::uint8_t>(offset)) : 0xff;
  for (std::size_t i = 1; i < data.size(); ++i) data[i] = 0;
  update_interrupt();
}

void Serial::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (data.empty() || offset >= kRegisterCount) return;
  std::lock_guard lock(mutex_);
  write_register(static_cast<std::uint8_t>(offset), data[0]);
  update_interrupt();
}

std::size_t Serial::enqueue_input(std::span<const std::uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  const std::size_t accepted = std::min(bytes.size(), kInputCapacity - input_.size());
  input_.insert(input_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(accepted));
  update_interrupt();
  return accepted;
}

std::uint8_t Serial::read_register(std::uint8_t reg) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData:
      if (dlab) return dll_;
      if (input_.empty()) return 0;
      {
        const std::uint8_t byte = input_.front();
        input_.pop_front();
        return byte;
      }
    case kIer: return dlab ? dlm_ : ier_;
    case kIirFcr: {
      const std::uint8_t iir = interrupt_identification();
      if ((iir & 0x0f) == kIirThrEmpty) thr_empty_interrupt_ = false;  // reading IIR clears THRE
      return iir;
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr:
      return static_cast<std::uint8_t>((input_.empty() ? 0 : kLsrDataReady) | kLsrThrEmpty | kLsrTransmitterEmpty);
    case kMsr:
      if ((mcr_ & kMcrLoopback) != 0) {  // modem outputs loop back to the status inputs
        return static_cast<std::uint8_t>(((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
                                         ((mcr_ & kMcrOut1) ? kMsrRi : 0) | ((mcr_ & kMcrOut2) ? kMsrDcd : 0));
      }
      return kMsrDcd | kMsrDsr | kMsrCts;
    case kScratch: return scratch_;
    default: return 0xff;
  }
}

void Serial::write_register(std::uint8_t reg, std::uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData:
      if (dlab) {
        dll_ = value;
      } else if ((mcr_ & kMcrLoopback) != 0) {
        if (input_.size() < kInputCapacity) input_.push_back(value);
        thr_empty_interrupt_ = true;
      } else {
        sink_(std::span(&value, 1));
        thr_empty_interrupt_ = true;  // sent at once: the holding register is empty again
      }
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
      } else {
        const bool enabling_thre = (value & kIerThrEmpty) != 0 && (ier_ & kIerThrEmpty) == 0;
        ier_ = value & kIerMask;
        if (enabling_thre) thr_empty_interrupt_ = true;  // THR is always empty
      }
      break;
    case kIirFcr:
      fifo_enabled_ = (value & kFcrEnable) != 0;
      if ((value & kFcrClearReceive) != 0) input_.clear();
      break;
    case kLcr: lcr_ = value; break;
    case kMcr: mcr_ = value & kMcrMask; break;
    case kScratch: scratch_ = value; break;
    default:  // LSR and MSR are read-only
      break;
  }
}

std::uint8_t Serial::interrupt_identification() const {
  const std::uint8_t fifo = fifo_enabled_ ? kIirFifoEnabled : 0;
  if ((ier_ & kIerReceivedData) != 0 && !input_.empty()) return fifo | kIirReceivedData;
  if ((ier_ & kIerThrEmpty) != 0 && thr_empty_interrupt_) return fifo | kIirThrEmpty;
  return fifo | kIirNoInterrupt;
}

void Serial::update_interrupt() {
  const bool level = (interrupt_identification() & kIirNoInterrupt) == 0;
  if (level != irq_level_) {
    irq_level_ = level;
    irq_.set_level(level);
  }
}

}  // namespace microvm::devices

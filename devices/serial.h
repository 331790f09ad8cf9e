// A 16550A UART (National Semiconductor PC16550D datasheet) as Linux's 8250 driver uses it:
// divisor latch, FIFOs reported, interrupts for received data and transmitter-empty, loopback,
// modem status. Transmission is instantaneous: each THR byte goes straight to the output sink.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"

#include "devices/bus_device.h"
#include "devices/interrupt_line.h"

namespace microvm::devices {

class Serial final : public BusDevice {
 public:
  using OutputSink = std::function<void(std::span<const std::uint8_t>)>;
  static constexpr std::size_t kRegisterCount = 8;
  static constexpr std::size_t kInputCapacity = 4096;  // bytes of host input buffered for the guest

  // Register offsets (PC16550D table 2); DLAB is LCR bit 7.
  enum Register : std::uint8_t {
    kData = 0,    // RBR (read) / THR (write); DLL when DLAB
    kIer = 1,     // interrupt enable; DLM when DLAB
    kIirFcr = 2,  // IIR (read) / FCR (write)
    kLcr = 3,
    kMcr = 4,
    kLsr = 5,
    kMsr = 6,
    kScratch = 7,
  };

  Serial(InterruptLine& irq, OutputSink sink) : irq_(irq), sink_(std::move(sink)) {}

  // Everything a snapshot keeps: the registers, what the interrupt line was left at, and the host
  // input the guest has not read yet.
  struct State {
    std::uint8_t ier = 0;
    std::uint8_t lcr = 0;
    std::uint8_t mcr = 0;
    std::uint8_t scratch = 0;
    std::uint8_t dll = 0;
    std::uint8_t dlm = 0;
    bool fifo_enabled = false;
    bool thr_empty_interrupt = false;
    bool irq_level = false;
    std::vector<std::uint8_t> input;  // at most kInputCapacity bytes

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const;
  // Takes `state` over (refusing register values the device cannot hold and input beyond its
  // capacity). The interrupt line is not touched: its level is part of the restored irqchip.
  [[nodiscard]] Result<void> restore(const State& state);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Host input for the guest (thread-safe). Returns how many bytes were accepted; the rest does not
  // fit the input buffer until the guest reads.
  std::size_t enqueue_input(std::span<const std::uint8_t> bytes);

 private:
  std::uint8_t read_register(std::uint8_t reg);
  void write_register(std::uint8_t reg, std::uint8_t value);
  std::uint8_t interrupt_identification() const;
  void update_interrupt();

  InterruptLine& irq_;
  OutputSink sink_;
  mutable std::mutex mutex_;
  std::deque<std::uint8_t> input_;
  std::uint8_t ier_ = 0;
  std::uint8_t lcr_ = 0x03;  // 8 data bits
  std::uint8_t mcr_ = 0x08;  // OUT2
  std::uint8_t scratch_ = 0;
  std::uint8_t dll_ = 0x0c;  // 9600 baud divisor
  std::uint8_t dlm_ = 0;
  bool fifo_enabled_ = false;
  bool thr_empty_interrupt_ = false;  // THRE interrupt pending (cleared by reading IIR or writing THR)
  bool irq_level_ = false;
};

}  // namespace microvm::devices

// Error, Result, fail() and the TRY family of macros (base/result.h, base/error.h).
#include "base/error.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

namespace microvm {
namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return fail("'{}' is not a digit", c);
  return c - '0';
}

Result<int> sum_digits(char a, char b) {
  const int x = TRY(parse_digit(a));
  const int y = TRY(parse_digit(b));
  return x + y;
}

Result<int> sum_with_context(char a, char b) {
  return TRY_CONTEXT("adding digits", sum_digits(a, b));
}

int g_steps = 0;

Result<void> step(bool ok) {
  if (!ok) return fail("step {} failed", g_steps);
  ++g_steps;
  return {};
}

Result<void> two_steps(bool first, bool second) {
  TRY_VOID(step(first));
  TRY_VOID(step(second));
  return {};
}

Result<std::unique_ptr<int>> make_boxed(int v) {
  return std::make_unique<int>(v);
}

Result<int> unbox(int v) {
  std::unique_ptr<int> boxed = TRY(make_boxed(v));  // move-only values pass through TRY
  return *boxed;
}

TEST(Error, FailFormatsTheMessage) {
  const Result<int> r = fail("bad value {:#x} in {}", 255, "header");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "bad value 0xff in header");
}

TEST(Error, EachHelperSetsItsKind) {
  EXPECT_EQ(Result<int>(fail("x")).error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(Result<int>(fail_state("x")).error().kind, ErrorKind::kWrongState);
  EXPECT_EQ(Result<int>(fail_host("x")).error().kind, ErrorKind::kHost);
  EXPECT_EQ(Result<int>(fail_kvm("x")).error().kind, ErrorKind::kKvm);
  EXPECT_EQ(Result<int>(fail_kind(ErrorKind::kGuest, "x {}", 1)).error().message, "x 1");
}

TEST(Error, ContextKeepsTheKind) {
  const Error e{"ioctl failed", ErrorKind::kKvm};
  const Error wrapped = e.context("creating the VM");
  EXPECT_EQ(wrapped.kind, ErrorKind::kKvm);
  EXPECT_EQ(wrapped.message, "creating the VM: ioctl failed");
}

TEST(Error, ContextPrefixesTheMessage) {
  const Error e{"file not found"};
  EXPECT_EQ(e.context("loading kernel").message, "loading kernel: file not found");
  EXPECT_EQ(e.message, "file not found");  // the original is unchanged
}

TEST(Error, TryYieldsTheValue) {
  EXPECT_EQ(sum_digits('3', '4').value(), 7);
}

TEST(Error, TryReturnsTheFirstError) {
  const auto r = sum_digits('x', 'y');
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "'x' is not a digit");
  EXPECT_EQ(sum_digits('1', 'z').error().message, "'z' is not a digit");
}

TEST(Error, TryContextPrefixesOnlyErrors) {
  EXPECT_EQ(sum_with_context('2', '2').value(), 4);
  EXPECT_EQ(sum_with_context('2', '?').error().message, "adding digits: '?' is not a digit");
}

TEST(Error, TryVoidStopsAtTheFirstFailure) {
  g_steps = 0;
  EXPECT_TRUE(two_steps(true, true).has_value());
  EXPECT_EQ(g_steps, 2);
  g_steps = 0;
  const auto r = two_steps(false, true);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "step 0 failed");
  EXPECT_EQ(g_steps, 0);  // the second step never ran
}

TEST(Error, TryMovesMoveOnlyValues) {
  EXPECT_EQ(unbox(42).value(), 42);
}

TEST(Error, ErrnoText) {
  EXPECT_EQ(errno_text(ENOENT), "No such file or directory");
  EXPECT_EQ(errno_text(EACCES), "Permission denied");
}

}  // namespace
}  // namespace microvm

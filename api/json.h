// JSON text in and out with the API's rules, and how fault messages show what a client sent.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace microvm::api {

// JSON text -> value with the API's rules: at most kMaxJsonDepth levels of nesting, no duplicate
// keys in an object, valid UTF-8. Never throws.
inline constexpr int kMaxJsonDepth = 16;
[[nodiscard]] Result<nlohmann::json> parse_json(std::string_view text);

// Compact JSON text; invalid UTF-8 in strings becomes U+FFFD instead of an exception.
[[nodiscard]] std::string json_text(const nlohmann::json& value);

// How much of a client-supplied key, id or value a fault message quotes.
inline constexpr std::size_t kMaxQuoted = 64;
// `text` in backquotes, cut after kMaxQuoted bytes ("`abc...`").
[[nodiscard]] std::string quote(std::string_view text);
// The shown part of a JSON value in "got ..." messages: numbers and short strings by value, the rest
// by type ("an array").
[[nodiscard]] std::string describe(const nlohmann::json& value);

}  // namespace microvm::api

#include "api/fields.h"

#include <algorithm>
#include <utility>

#include "api/json.h"
#include "base/error.h"

namespace microvm::api {
namespace {

using nlohmann::json;

bool contains_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

}  // namespace

Result<Fields> Fields::of(const json& value, std::string what) {
  if (!value.is_object()) return fail("{}: expected a JSON object, got {}", what, describe(value));
  return Fields(value, std::move(what));
}

const json* Fields::find(std::string_view key) {
  taken_.emplace(key);
  const auto it = object_->find(key);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> Fields::optional_string(std::string_view key) {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) return fail("{}: field `{}` must be a string, got {}", what_, key, describe(*value));
  const auto& text = value->get_ref<const std::string&>();
  if (contains_nul(text)) return fail("{}: field `{}` must not contain NUL characters", what_, key);
  return text;
}

Result<std::string> Fields::required_string(std::string_view key) {
  auto text = TRY(optional_string(key));
  if (!text) return fail("{}: missing required field `{}` (a string)", what_, key);
  return std::move(*text);
}

Result<std::string> Fields::required_nonempty(std::string_view key) {
  auto text = TRY(required_string(key));
  if (text.empty()) return fail("{}: field `{}` must not be empty", what_, key);
  return text;
}

Result<std::optional<bool>> Fields::optional_bool(std::string_view key) {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) {
    return fail("{}: field `{}` must be a boolean (true or false), got {}", what_, key, describe(*value));
  }
  return value->get<bool>();
}

Result<bool> Fields::required_bool(std::string_view key) {
  const auto flag = TRY(optional_bool(key));
  if (!flag) return fail("{}: missing required field `{}` (a boolean)", what_, key);
  return *flag;
}

Result<std::optional<std::uint64_t>> Fields::optional_uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  const bool in_range =
      value->is_number_unsigned() && value->get<std::uint64_t>() >= min && value->get<std::uint64_t>() <= max;
  if (!in_range) {
    return fail("{}: field `{}` must be an integer from {} to {}, got {}", what_, key, min, max, describe(*value));
  }
  return value->get<std::uint64_t>();
}

Result<std::uint64_t> Fields::required_uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
  const auto number = TRY(optional_uint(key, min, max));
  if (!number) return fail("{}: missing required field `{}` (an integer from {} to {})", what_, key, min, max);
  return *number;
}

Result<std::optional<std::vector<std::string>>> Fields::optional_string_array(std::string_view key) {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_array()) {
    return fail("{}: field `{}` must be an array of strings, got {}", what_, key, describe(*value));
  }
  std::vector<std::string> out;
  out.reserve(value->size());
  for (std::size_t i = 0; i < value->size(); ++i) {
    const json& item = (*value)[i];
    if (!item.is_string()) return fail("{}: field `{}[{}]` must be a string, got {}", what_, key, i, describe(item));
    const auto& text = item.get_ref<const std::string&>();
    if (contains_nul(text)) return fail("{}: field `{}[{}]` must not contain NUL characters", what_, key, i);
    out.push_back(text);
  }
  return out;
}

Result<void> Fields::only(std::string_view key, std::initializer_list<json> accepted) {
  const json* value = find(key);
  if (value == nullptr) return {};
  if (std::ranges::find(accepted, *value) != accepted.end()) return {};
  if (accepted.size() == 0) return fail("{}: field `{}` is not supported by microvm (omit it)", what_, key);
  std::string values;
  for (const json& item : accepted) values += (values.empty() ? "" : ", ") + json_text(item);
  return fail("{}: field `{}` is not supported by microvm except as {}, got {}", what_, key, values, describe(*value));
}

Result<void> Fields::finish() const {
  for (const auto& [key, value] : object_->items()) {
    if (!taken_.contains(key)) return fail("{}: unknown field {}", what_, quote(key));
  }
  return {};
}

}  // namespace microvm::api

// Fields: the members of one JSON object (a request body, a config-file section), taken field by
// field with typed getters whose errors name the object and the field; finish() rejects every field
// nobody took. Every resource parser (api/resources/) reads its object through it.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace microvm::api {

class Fields {
 public:
  // `what` names the object in messages ("machine-config", "drives[1]"); fails unless `value` is an
  // object. `value` must outlive the Fields.
  [[nodiscard]] static Result<Fields> of(const nlohmann::json& value, std::string what);

  // The member `key`, or nullptr when absent or null (the same for optional fields, as Firecracker's
  // serde Option). Marks `key` taken either way.
  [[nodiscard]] const nlohmann::json* find(std::string_view key);

  // Strings never contain NUL (they become paths, names and arguments).
  [[nodiscard]] Result<std::optional<std::string>> optional_string(std::string_view key);
  [[nodiscard]] Result<std::string> required_string(std::string_view key);
  // A required string that must not be empty (paths, names).
  [[nodiscard]] Result<std::string> required_nonempty(std::string_view key);
  [[nodiscard]] Result<std::optional<bool>> optional_bool(std::string_view key);
  [[nodiscard]] Result<bool> required_bool(std::string_view key);
  // An unsigned integer in [min, max].
  [[nodiscard]] Result<std::optional<std::uint64_t>> optional_uint(std::string_view key, std::uint64_t min,
                                                                   std::uint64_t max);
  [[nodiscard]] Result<std::uint64_t> required_uint(std::string_view key, std::uint64_t min, std::uint64_t max);
  [[nodiscard]] Result<std::optional<std::vector<std::string>>> optional_string_array(std::string_view key);

  // A Firecracker field microvm does not implement: accepted when absent, null or one of the
  // `accepted` values (the ones that mean what microvm does anyway), else a clear refusal.
  [[nodiscard]] Result<void> only(std::string_view key, std::initializer_list<nlohmann::json> accepted);

  // Rejects every member no getter asked for.
  [[nodiscard]] Result<void> finish() const;

  [[nodiscard]] const std::string& what() const { return what_; }

 private:
  Fields(const nlohmann::json& object, std::string what) : object_(&object), what_(std::move(what)) {}

  const nlohmann::json* object_;
  std::string what_;
  std::set<std::string, std::less<>> taken_;
};

}  // namespace microvm::api

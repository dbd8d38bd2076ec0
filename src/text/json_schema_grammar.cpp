// JSON schema -> grammar text (see grammar.h for what is supported).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "muse/error.h"
#include "text/grammar.h"

namespace muse::text {
namespace {

using Json = nlohmann::ordered_json;

// Keywords that change which documents are valid and that the converter cannot express.
constexpr const char* kUnsupported[] = {
    "pattern",
    "patternProperties",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "uniqueItems",
    "propertyNames",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
};

constexpr size_t kMaxCount = 10000;  // largest minItems/maxItems/maxLength expressed
constexpr uint64_t kMaxMagnitude = 9999999999999999999ull;  // 19 digits

std::string json_literal(const Json& value) {
  return grammar_literal(value.dump());
}

// "{m,n}" / "{m,}" suffix for a repetition.
std::string count_suffix(size_t lo, std::optional<size_t> hi) {
  if (hi && *hi == lo) return str_cat("{", lo, "}");
  if (hi) return str_cat("{", lo, ",", *hi, "}");
  return str_cat("{", lo, ",}");
}

// Decimal strings (no leading zeros) of every integer in [a, b]; a and b have equal length.
std::string digits_between(const std::string& a, const std::string& b) {
  if (a == b) return grammar_literal(a);
  const size_t n = a.size();
  if (n == 1) return str_cat("[", a[0], "-", b[0], "]");
  const std::string rest_a = a.substr(1), rest_b = b.substr(1);
  if (a[0] == b[0])
    return str_cat(grammar_literal(a.substr(0, 1)), " ", digits_between(rest_a, rest_b));
  const std::string zeros(n - 1, '0'), nines(n - 1, '9');
  if (rest_a == zeros && rest_b == nines) {
    return str_cat("[", a[0], "-", b[0], "] [0-9]{", n - 1, "}");
  }
  std::vector<std::string> alts;
  alts.push_back(str_cat(grammar_literal(a.substr(0, 1)), " ", digits_between(rest_a, nines)));
  if (a[0] + 1 <= b[0] - 1) {
    alts.push_back(str_cat("[", static_cast<char>(a[0] + 1), "-", static_cast<char>(b[0] - 1),
                           "] [0-9]{", n - 1, "}"));
  }
  alts.push_back(str_cat(grammar_literal(b.substr(0, 1)), " ", digits_between(zeros, rest_b)));
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out + ")";
}

// Decimal strings of every integer in [lo, hi] (0 <= lo <= hi).
std::string unsigned_range(uint64_t lo, uint64_t hi) {
  std::vector<std::string> alts;
  uint64_t start = lo;
  while (start <= hi) {
    const size_t len = std::to_string(start).size();
    uint64_t len_max = kMaxMagnitude;
    if (len < 19) {
      len_max = 9;
      for (size_t i = 1; i < len; ++i) len_max = len_max * 10 + 9;
    }
    const uint64_t end = std::min(hi, len_max);
    if (end < start) break;
    alts.push_back(digits_between(std::to_string(start), std::to_string(end)));
    if (end == hi) break;
    start = end + 1;
  }
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out + ")";
}

class SchemaConverter {
 public:
  SchemaConverter(const Json& root, std::string_view root_name, std::string_view prefix)
      : root_(root), root_name_(root_name), prefix_(prefix) {
    used_names_.insert(root_name_);
  }

  std::string convert() {
    const std::string body = generate(root_, "root");
    std::string out = root_name_ + " ::= " + body + "\n";
    for (const auto& [name, rule_body] : rules_) out += name + " ::= " + rule_body + "\n";
    return out;
  }

  std::string convert_any_object() {
    const std::string body = any_object();
    std::string out = root_name_ + " ::= " + body + "\n";
    for (const auto& [name, rule_body] : rules_) out += name + " ::= " + rule_body + "\n";
    return out;
  }

 private:
  std::string unique_name(std::string_view hint) {
    std::string base = prefix_;
    for (char c : hint) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      base += ok ? c : '-';
    }
    std::string name = base;
    for (int i = 2; used_names_.count(name); ++i) name = str_cat(base, "-", i);
    used_names_.insert(name);
    return name;
  }

  // A named rule for `body` (identical bodies share one rule).
  std::string add_rule(std::string_view hint, const std::string& body) {
    auto it = by_body_.find(body);
    if (it != by_body_.end()) return it->second;
    const std::string name = unique_name(hint);
    rules_.emplace_back(name, body);
    by_body_.emplace(body, name);
    return name;
  }

  // Shared building blocks, defined on first use under fixed names.
  std::string primitive(const std::string& which) {
    auto it = primitives_.find(which);
    if (it != primitives_.end()) return it->second;
    const std::string name = unique_name(which);
    primitives_[which] = name;
    std::string body;
    if (which == "ws") {
      body = R"(( " " | "\n" [ \t]{0,20} )?)";
    } else if (which == "hex") {
      body = "[0-9a-fA-F]";
    } else if (which == "char") {
      const std::string h = primitive("hex");
      body = str_cat(R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] )", h, " ",
                     h, " ", h, " | [dD] [0-7] ", h, " ", h, R"( | [dD] [89abAB] )", h, " ", h,
                     R"( "\\u" [dD] [c-fC-F] )", h, " ", h, " ) )");
    } else if (which == "string") {
      body = str_cat(R"("\"" )", primitive("char"), R"(* "\"")");
    } else if (which == "number") {
      body = R"("-"? ( "0" | [1-9] [0-9]{0,18} ) ( "." [0-9]{1,20} )? ( [eE] [-+]? [0-9]{1,4} )?)";
    } else if (which == "integer") {
      body = R"("-"? ( "0" | [1-9] [0-9]{0,18} ))";
    } else if (which == "boolean") {
      body = R"("true" | "false")";
    } else if (which == "null") {
      body = R"("null")";
    } else if (which == "value") {
      body =
          str_cat(primitive("object"), " | ", primitive("array"), " | ", primitive("string"), " | ",
                  primitive("number"), " | ", primitive("boolean"), " | ", primitive("null"));
    } else if (which == "object") {
      const std::string ws = primitive("ws");
      const std::string kv =
          str_cat(primitive("string"), " ", ws, " \":\" ", ws, " ", primitive("value"));
      body = str_cat("\"{\" ", ws, " ( ", kv, " ( ", ws, " \",\" ", ws, " ", kv, " )* )? ", ws,
                     " \"}\"");
    } else if (which == "array") {
      const std::string ws = primitive("ws");
      const std::string v = primitive("value");
      body = str_cat("\"[\" ", ws, " ( ", v, " ( ", ws, " \",\" ", ws, " ", v, " )* )? ", ws,
                     " \"]\"");
    } else if (which == "date") {
      body = R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))";
    } else if (which == "time") {
      body =
          R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | "z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))";
    } else if (which == "date-time") {
      body = str_cat(primitive("date"), " [Tt] ", primitive("time"));
    } else if (which == "uuid") {
      const std::string h = primitive("hex");
      body = str_cat(h, "{8} \"-\" ", h, "{4} \"-\" ", h, "{4} \"-\" ", h, "{4} \"-\" ", h, "{12}");
    } else {
      throw Error("internal: unknown primitive " + which);
    }
    rules_.emplace_back(name, body);
    return name;
  }

  std::string any_object() { return primitive("object"); }

  const Json& resolve(const std::string& ref) {
    MUSE_CHECK(!ref.empty() && ref[0] == '#',
               "JSON schema: only local $ref ('#/...') is supported, got '", ref, "'");
    try {
      return root_.at(Json::json_pointer(ref.substr(1)));
    } catch (const nlohmann::json::exception&) {
      throw Error(str_cat("JSON schema: $ref '", ref, "' does not resolve"));
    }
  }

  std::string reference(const std::string& ref) {
    auto it = refs_.find(ref);
    if (it != refs_.end()) return it->second;
    const size_t slash = ref.find_last_of('/');
    const std::string name =
        unique_name(str_cat("ref-", slash == std::string::npos ? "root" : ref.substr(slash + 1)));
    refs_[ref] = name;  // before generating: recursive schemas refer to it
    MUSE_CHECK(++depth_ < 200, "JSON schema: $ref nesting is too deep");
    const std::string body = generate(resolve(ref), name);
    --depth_;
    rules_.emplace_back(name, body);
    return name;
  }

  static std::string alternatives(const std::vector<std::string>& alts) {
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
    return out + " )";
  }

  std::string generate(const Json& schema, const std::string& hint) {
    if (schema.is_boolean()) {
      MUSE_CHECK(schema.get<bool>(), "JSON schema: 'false' schema allows nothing");
      return primitive("value");
    }
    MUSE_CHECK(schema.is_object(), "JSON schema: a schema must be an object or a boolean");
    for (const char* kw : kUnsupported) {
      MUSE_CHECK(!schema.contains(kw), "JSON schema: keyword '", kw, "' is not supported");
    }
    if (schema.contains("$ref")) {
      MUSE_CHECK(schema["$ref"].is_string(), "JSON schema: $ref must be a string");
      return reference(schema["$ref"].get<std::string>());
    }
    if (schema.value("nullable", false)) {
      Json inner = schema;
      inner.erase("nullable");
      return alternatives({generate(inner, hint), primitive("null")});
    }
    if (schema.contains("const")) return json_literal(schema["const"]);
    if (schema.contains("enum")) {
      const Json& values = schema["enum"];
      MUSE_CHECK(values.is_array() && !values.empty(),
                 "JSON schema: 'enum' must be a non-empty array");
      std::vector<std::string> alts;
      for (const auto& v : values) alts.push_back(json_literal(v));
      return add_rule(hint + "-enum", alternatives(alts));
    }
    for (const char* kw : {"anyOf", "oneOf"}) {
      if (!schema.contains(kw)) continue;
      const Json& subs = schema[kw];
      MUSE_CHECK(subs.is_array() && !subs.empty(), "JSON schema: '", kw,
                 "' must be a non-empty array");
      std::vector<std::string> alts;
      for (size_t i = 0; i < subs.size(); ++i)
        alts.push_back(generate(subs[i], str_cat(hint, "-", i)));
      return add_rule(hint, alternatives(alts));
    }
    if (schema.contains("allOf")) return generate(merge_all_of(schema), hint);

    std::vector<std::string> types;
    if (schema.contains("type")) {
      const Json& t = schema["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else {
        MUSE_CHECK(t.is_array() && !t.empty(), "JSON schema: 'type' must be a string or a list");
        for (const auto& x : t) {
          MUSE_CHECK(x.is_string(), "JSON schema: 'type' list entries must be strings");
          types.push_back(x.get<std::string>());
        }
      }
    } else if (schema.contains("properties") || schema.contains("additionalProperties")) {
      types.push_back("object");
    } else if (schema.contains("items") || schema.contains("prefixItems")) {
      types.push_back("array");
    } else {
      return primitive("value");
    }
    std::vector<std::string> alts;
    for (const auto& type : types) alts.push_back(generate_type(schema, type, hint));
    return alts.size() == 1 ? alts[0] : add_rule(hint, alternatives(alts));
  }

  Json merge_all_of(const Json& schema) {
    const Json& subs = schema["allOf"];
    MUSE_CHECK(subs.is_array() && !subs.empty(), "JSON schema: 'allOf' must be a non-empty array");
    Json merged = schema;
    merged.erase("allOf");
    for (const auto& sub_in : subs) {
      const Json* sub = &sub_in;
      for (int hops = 0; sub->is_object() && sub->contains("$ref"); ++hops) {
        MUSE_CHECK(hops < 50, "JSON schema: $ref chain is too long");
        sub = &resolve((*sub)["$ref"].get<std::string>());
      }
      const bool is_object_schema =
          sub->is_object() && (sub->value("type", Json("object")) == Json("object")) &&
          !sub->contains("anyOf") && !sub->contains("oneOf") && !sub->contains("allOf");
      MUSE_CHECK(is_object_schema, "JSON schema: 'allOf' is only supported for object schemas");
      for (const auto& [key, value] : sub->items()) {
        if (key == "properties") {
          for (const auto& [name, prop] : value.items()) merged["properties"][name] = prop;
        } else if (key == "required") {
          for (const auto& name : value) merged["required"].push_back(name);
        } else {
          merged[key] = value;
        }
      }
    }
    merged["type"] = "object";
    return merged;
  }

  std::string generate_type(const Json& schema, const std::string& type, const std::string& hint) {
    if (type == "object") return generate_object(schema, hint);
    if (type == "array") return generate_array(schema, hint);
    if (type == "string") return generate_string(schema, hint);
    if (type == "integer") return generate_integer(schema, hint);
    if (type == "number") {
      for (const char* kw : {"minimum", "exclusiveMinimum"}) {
        if (schema.contains(kw) && schema[kw].is_number() && schema[kw].get<double>() >= 0) {
          // Cheap part of the bound: no minus sign. (The exact value is not enforced.)
          return add_rule(
              "nonneg-number",
              R"(( "0" | [1-9] [0-9]{0,18} ) ( "." [0-9]{1,20} )? ( [eE] [-+]? [0-9]{1,4} )?)");
        }
      }
      return primitive("number");
    }
    if (type == "boolean") return primitive("boolean");
    if (type == "null") return primitive("null");
    throw Error(str_cat("JSON schema: unknown type '", type, "'"));
  }

  static std::optional<size_t> count_keyword(const Json& schema, const char* kw) {
    if (!schema.contains(kw)) return std::nullopt;
    const Json& v = schema[kw];
    MUSE_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
               "JSON schema: '", kw, "' must be a non-negative integer");
    const auto n = v.get<uint64_t>();
    MUSE_CHECK(n <= kMaxCount, "JSON schema: '", kw, "' ", n, " is too large (limit ", kMaxCount,
               ")");
    return static_cast<size_t>(n);
  }

  std::string generate_string(const Json& schema, const std::string& hint) {
    if (schema.contains("format")) {
      const std::string format =
          schema["format"].is_string() ? schema["format"].get<std::string>() : "";
      if (format == "date" || format == "time" || format == "date-time" || format == "uuid") {
        return add_rule(format + "-string", str_cat(R"("\"" )", primitive(format), R"( "\"")"));
      }
      // Other formats are annotations: any string.
    }
    const size_t lo = count_keyword(schema, "minLength").value_or(0);
    const std::optional<size_t> hi = count_keyword(schema, "maxLength");
    if (lo == 0 && !hi) return primitive("string");
    MUSE_CHECK(!hi || *hi >= lo, "JSON schema: maxLength is smaller than minLength");
    return add_rule(hint + "-string",
                    str_cat(R"("\"" )", primitive("char"), count_suffix(lo, hi), R"( "\"")"));
  }

  std::string generate_integer(const Json& schema, const std::string& hint) {
    // Bounds as integers; magnitudes beyond 19 digits are not expressible anyway.
    const double kLimit = static_cast<double>(kMaxMagnitude);
    double lo = -kLimit, hi = kLimit;
    auto bound = [&](const char* kw) -> std::optional<double> {
      if (!schema.contains(kw)) return std::nullopt;
      MUSE_CHECK(schema[kw].is_number(), "JSON schema: '", kw, "' must be a number");
      return schema[kw].get<double>();
    };
    if (auto v = bound("minimum")) lo = std::max(lo, std::ceil(*v));
    if (auto v = bound("exclusiveMinimum")) lo = std::max(lo, std::floor(*v) + 1);
    if (auto v = bound("maximum")) hi = std::min(hi, std::floor(*v));
    if (auto v = bound("exclusiveMaximum")) hi = std::min(hi, std::ceil(*v) - 1);
    if (lo == -kLimit && hi == kLimit) return primitive("integer");
    MUSE_CHECK(lo <= hi, "JSON schema: no integer satisfies the minimum/maximum");
    // kLimit rounds up to 1e19 as a double: clamp magnitudes in integer space.
    auto magnitude = [](double v) {
      return v >= 1e19 ? kMaxMagnitude : std::min(kMaxMagnitude, static_cast<uint64_t>(v));
    };
    std::vector<std::string> alts;
    if (lo < 0) {
      alts.push_back("\"-\" " + unsigned_range(magnitude(hi < 0 ? -hi : 1), magnitude(-lo)));
    }
    if (hi >= 0) alts.push_back(unsigned_range(magnitude(std::max(lo, 0.0)), magnitude(hi)));
    return add_rule(hint + "-integer", alternatives(alts));
  }

  std::string generate_array(const Json& schema, const std::string& hint) {
    const std::string ws = primitive("ws");
    const std::string sep = str_cat(ws, " \",\" ", ws);
    const size_t min_items = count_keyword(schema, "minItems").value_or(0);
    const std::optional<size_t> max_items = count_keyword(schema, "maxItems");
    MUSE_CHECK(!max_items || *max_items >= min_items,
               "JSON schema: maxItems is smaller than minItems");
    std::string item;  // empty: no (further) items allowed
    if (!schema.contains("items") || schema["items"] != Json(false)) {
      item = schema.contains("items") ? generate(schema["items"], hint + "-item")
                                      : (schema.contains("prefixItems") ? "" : primitive("value"));
    }
    std::string body = "\"[\" " + ws + " ";
    if (schema.contains("prefixItems")) {
      const Json& prefix = schema["prefixItems"];
      MUSE_CHECK(prefix.is_array(), "JSON schema: 'prefixItems' must be an array");
      for (size_t i = 0; i < prefix.size(); ++i) {
        body += (i ? sep + " " : "") + generate(prefix[i], str_cat(hint, "-", i)) + " ";
      }
      const size_t n = prefix.size();
      MUSE_CHECK(!max_items || *max_items >= n,
                 "JSON schema: maxItems is smaller than prefixItems");
      if (!item.empty()) {
        const size_t rest_lo = min_items > n ? min_items - n : 0;
        std::optional<size_t> rest_hi;
        if (max_items) rest_hi = *max_items - n;
        if (n == 0) {
          body += array_items(item, sep, rest_lo, rest_hi);
        } else if (!rest_hi || *rest_hi > 0) {
          body += str_cat("( ", sep, " ", item, " )", count_suffix(rest_lo, rest_hi), " ");
        }
      }
    } else if (!item.empty()) {
      body += array_items(item, sep, min_items, max_items);
    } else {
      MUSE_CHECK(min_items == 0, "JSON schema: minItems > 0 but items is false");
    }
    body += ws + " \"]\"";
    return add_rule(hint + "-array", body);
  }

  static std::string array_items(const std::string& item, const std::string& sep, size_t lo,
                                 std::optional<size_t> hi) {
    if (hi && *hi == 0) return "";
    const std::optional<size_t> rest_hi = hi ? std::optional<size_t>(*hi - 1) : std::nullopt;
    const std::string rest =
        str_cat("( ", sep, " ", item, " )", count_suffix(lo > 0 ? lo - 1 : 0, rest_hi));
    const std::string seq = item + " " + rest;
    return lo == 0 ? "( " + seq + " )? " : seq + " ";
  }

  std::string generate_object(const Json& schema, const std::string& hint) {
    const std::string ws = primitive("ws");
    const std::string sep = str_cat(ws, " \",\" ", ws);
    Json props = schema.contains("properties") ? schema["properties"] : Json::object();
    MUSE_CHECK(props.is_object(), "JSON schema: 'properties' must be an object");
    std::set<std::string> required;
    if (schema.contains("required")) {
      MUSE_CHECK(schema["required"].is_array(), "JSON schema: 'required' must be an array");
      for (const auto& r : schema["required"]) {
        MUSE_CHECK(r.is_string(), "JSON schema: 'required' entries must be strings");
        required.insert(r.get<std::string>());
        if (!props.contains(r.get<std::string>())) props[r.get<std::string>()] = Json::object();
      }
    }
    // Extra properties: absent additionalProperties allows none (strict structured output),
    // except for a bare {"type": "object"}, which means any object.
    std::string extra;
    if (schema.contains("additionalProperties")) {
      const Json& ap = schema["additionalProperties"];
      if (ap != Json(false)) {
        extra = str_cat(primitive("string"), " ", ws, " \":\" ", ws, " ",
                        ap == Json(true) ? primitive("value") : generate(ap, hint + "-extra"));
      }
    } else if (props.empty()) {
      return primitive("object");
    }
    // after[i]: the rest from property i once something was written (each item preceded by
    // a comma); first[i]: the rest from property i when nothing was written yet.
    std::string after = extra.empty() ? "" : str_cat("( ", sep, " ", extra, " )*");
    std::string first = extra.empty() ? "" : str_cat("( ", extra, " ( ", sep, " ", extra, " )* )?");
    std::vector<std::pair<std::string, const Json*>> list;
    for (const auto& [name, prop] : props.items()) list.emplace_back(name, &prop);
    for (size_t i = list.size(); i-- > 0;) {
      const std::string& name = list[i].first;
      const std::string kv = str_cat(grammar_literal(Json(name).dump()), " ", ws, " \":\" ", ws,
                                     " ", generate(*list[i].second, hint + "-" + name));
      const bool req = required.count(name) > 0;
      const std::string next_after = after.empty() ? "" : " " + after;
      std::string new_after =
          req ? str_cat(sep, " ", kv, next_after) : str_cat("( ", sep, " ", kv, " )?", next_after);
      std::string new_first = req ? str_cat(kv, next_after)
                                  : str_cat(kv, next_after, " | ", first.empty() ? "\"\"" : first);
      after = add_rule(hint + "-after", new_after);
      first = add_rule(hint + "-first", new_first);
    }
    return add_rule(hint,
                    str_cat("\"{\" ", ws, " ", first.empty() ? "" : first + " ", ws, " \"}\""));
  }

  const Json& root_;
  std::string root_name_;
  std::string prefix_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::unordered_map<std::string, std::string> by_body_;
  std::map<std::string, std::string> primitives_;
  std::map<std::string, std::string> refs_;
  std::set<std::string> used_names_;
  int depth_ = 0;
};

}  // namespace

std::string json_schema_to_grammar(const nlohmann::ordered_json& schema, std::string_view root_name,
                                   std::string_view prefix) {
  try {
    return SchemaConverter(schema, root_name, prefix).convert();
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat("JSON schema: ", e.what()));
  }
}

std::string json_object_grammar(std::string_view root_name, std::string_view prefix) {
  return SchemaConverter(nlohmann::ordered_json::object(), root_name, prefix).convert_any_object();
}

std::string grammar_literal(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace muse::text

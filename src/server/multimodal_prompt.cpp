#include "server/multimodal_prompt.h"

#include <random>

#include "server/api_error.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

// A copy of the messages with the k-th media part replaced by replace(k).
ordered_json replace_media_parts(const ordered_json& messages,
                                 const std::function<ordered_json(size_t)>& replace) {
  ordered_json out = messages;
  size_t k = 0;
  for (auto& m : out) {
    auto content = m.find("content");
    if (content == m.end() || !content->is_array()) continue;
    for (auto& part : *content)
      if (is_media_part(part)) part = replace(k++);
  }
  return out;
}

struct Occurrence {
  size_t pos = 0, len = 0;
  size_t media = 0;  // index into the request's media
};

// Where each of `needles[k]` occurs, in order, each after the previous; false if one
// is missing or the text holds extra occurrences of a placeholder.
bool find_in_order(const std::string& text, const std::vector<std::string>& needles,
                   std::vector<Occurrence>& out) {
  out.clear();
  size_t from = 0;
  for (size_t k = 0; k < needles.size(); ++k) {
    if (needles[k].empty()) return false;
    const size_t at = text.find(needles[k], from);
    if (at == std::string::npos) return false;
    out.push_back({at, needles[k].size(), k});
    from = at + needles[k].size();
  }
  return true;
}

size_t count_of(const std::string& text, const std::string& needle) {
  if (needle.empty()) return 0;
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string random_marker() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return "<__muse_media_" + std::to_string(rng()) + "_";
}

}  // namespace

MultimodalPrompt build_multimodal_prompt(
    const ordered_json& messages, const std::vector<EncodedMedia>& media,
    const text::Tokenizer& tok, const MediaTokenIds& ids,
    const std::function<std::string(const ordered_json&)>& render) {
  auto is_image = [&](size_t k) { return media[k].kind == MediaPart::Kind::Image; };
  auto text_of = [&](int32_t id) {
    return id >= 0 && size_t(id) < tok.vocab_size() ? tok.token_text(id) : std::string();
  };
  const std::string image_text = text_of(ids.image), audio_text = text_of(ids.audio);

  // First choice: the template's own media markup ({"type": "image"} / "audio" parts,
  // as Hugging Face processors pass them).
  std::string text = render(replace_media_parts(messages, [&](size_t k) {
    return ordered_json{{"type", is_image(k) ? "image" : "audio"}};
  }));
  std::vector<std::string> needles;
  size_t n_images = 0;
  for (size_t k = 0; k < media.size(); ++k) {
    needles.push_back(is_image(k) ? image_text : audio_text);
    n_images += is_image(k);
  }
  std::vector<Occurrence> found;
  bool wrapped = false;  // markers need the model's wrapper tokens around the run
  const bool template_places_media = find_in_order(text, needles, found) &&
                                     count_of(text, image_text) == n_images &&
                                     count_of(text, audio_text) == media.size() - n_images;
  if (!template_places_media) {
    // The template ignores media parts: a unique marker in a text part stands for each.
    const std::string marker = random_marker();
    text = render(replace_media_parts(messages, [&](size_t k) {
      return ordered_json{{"type", "text"}, {"text", marker + std::to_string(k) + "__>"}};
    }));
    for (size_t k = 0; k < media.size(); ++k) needles[k] = marker + std::to_string(k) + "__>";
    if (!find_in_order(text, needles, found))
      throw invalid_request("the model's chat template does not place the media of this request",
                            "messages");
    wrapped = true;
  }

  MultimodalPrompt out;
  auto append_text = [&](std::string_view piece) {
    if (piece.empty()) return;
    try {
      const auto t = tok.encode(piece, /*add_special=*/false, /*parse_special=*/true);
      out.tokens.insert(out.tokens.end(), t.begin(), t.end());
    } catch (const Error& e) {
      throw invalid_request(std::string("cannot tokenize the prompt: ") + e.what(), "messages");
    }
  };
  size_t at = 0;
  for (const Occurrence& o : found) {
    append_text(std::string_view(text).substr(at, o.pos - at));
    const EncodedMedia& m = media[o.media];
    const bool image = is_image(o.media);
    const int32_t open = image ? ids.vision_start : ids.audio_start;
    const int32_t close = image ? ids.vision_end : ids.audio_end;
    const int32_t placeholder = std::max(image ? ids.image : ids.audio, 0);
    if (wrapped && open >= 0) out.tokens.push_back(open);
    out.media.push_back({int64_t(out.tokens.size()), m.n_tokens, m.rows, m.grid_h, m.grid_w, m.hash});
    out.tokens.insert(out.tokens.end(), size_t(m.n_tokens), placeholder);
    if (wrapped && close >= 0) out.tokens.push_back(close);
    at = o.pos + o.len;
  }
  append_text(std::string_view(text).substr(at));
  // Templates usually write BOS themselves; add it only when they did not.
  if (tok.add_bos() && tok.bos() != text::kNoToken &&
      (out.tokens.empty() || out.tokens.front() != tok.bos())) {
    out.tokens.insert(out.tokens.begin(), tok.bos());
    for (auto& m : out.media) ++m.start;
  }
  return out;
}

}  // namespace muse::server

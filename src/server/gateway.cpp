// The gateway to a remote primary: forwarding with pass-through of status and bytes, and
// the cpp-httplib adapter that relays an event stream as it arrives.
#include "server/gateway.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "muse/error.h"

namespace muse::server {

using nlohmann::json;

namespace {

// Largest answer kept for the mirror record; bytes beyond still reach the client.
constexpr size_t kMaxCapturedBytes = size_t{16} << 20;

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_event_stream(const std::string& content_type) {
  return lower(content_type).rfind("text/event-stream", 0) == 0;
}

int64_t int_field(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : 0;
}

void read_usage(const json& response, ChatOutput& out) {
  if (!response.contains("usage") || !response["usage"].is_object()) return;
  out.prompt_tokens = int_field(response["usage"], "prompt_tokens");
  out.completion_tokens = int_field(response["usage"], "completion_tokens");
}

// Choice 0 of a response or chunk ("choices" entries carry "index").
const json* first_choice(const json& response) {
  if (!response.contains("choices") || !response["choices"].is_array()) return nullptr;
  for (const json& c : response["choices"])
    if (c.is_object() && c.value("index", 0) == 0) return &c;
  return nullptr;
}

std::string error_body(const std::string& message, const std::string& code) {
  return json{
      {"error",
       {{"message", message}, {"type", "server_error"}, {"param", nullptr}, {"code", code}}}}
      .dump();
}

}  // namespace

ChatOutput chat_output_from_json(const json& response) {
  ChatOutput out;
  if (!response.is_object()) return out;
  if (response.contains("model") && response["model"].is_string()) out.model = response["model"];
  read_usage(response, out);
  const json* choice = first_choice(response);
  if (choice == nullptr) return out;
  if (choice->contains("message") && (*choice)["message"].is_object()) {
    const json& message = (*choice)["message"];
    if (message.contains("content") && message["content"].is_string()) {
      out.output = message["content"];
    } else if (message.contains("tool_calls") && message["tool_calls"].is_array()) {
      out.output = message["tool_calls"].dump();
    }
  } else if (choice->contains("text") && (*choice)["text"].is_string()) {
    out.output = (*choice)["text"];
  }
  return out;
}

ChatOutput chat_output_from_sse(std::string_view events) {
  ChatOutput out;
  size_t pos = 0;
  while (pos < events.size()) {
    size_t end = events.find('\n', pos);
    if (end == std::string_view::npos) end = events.size();
    std::string_view line = events.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("data:", 0) != 0) continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line == "[DONE]") break;
    const json chunk = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!chunk.is_object()) continue;
    if (out.model.empty() && chunk.contains("model") && chunk["model"].is_string())
      out.model = chunk["model"];
    read_usage(chunk, out);
    const json* choice = first_choice(chunk);
    if (choice == nullptr) continue;
    if (choice->contains("delta") && (*choice)["delta"].is_object()) {
      const json& delta = (*choice)["delta"];
      if (delta.contains("content") && delta["content"].is_string())
        out.output += delta["content"].get<std::string>();
    } else if (choice->contains("text") && (*choice)["text"].is_string()) {
      out.output += (*choice)["text"].get<std::string>();
    }
  }
  return out;
}

Gateway::Gateway(MirrorEndpoint remote, int64_t timeout_ms)
    : remote_(std::move(remote)), api_key_(remote_.api_key()), timeout_ms_(timeout_ms) {
  const std::string& url = remote_.url;
  const size_t scheme_end = url.find("://");
  MUSE_CHECK(scheme_end != std::string::npos && !remote_.model.empty(),
             "gateway: the remote primary needs a url like https://host/v1 and a model, got '", url,
             "'");
  const size_t path_start = url.find('/', scheme_end + 3);
  scheme_host_port_ = url.substr(0, path_start);
  base_path_ = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
  MUSE_CHECK(scheme_host_port_.size() > scheme_end + 3, "gateway: url '", url, "' has no host");
}

json Gateway::upstream_request(const json& request) const {
  json body = request;
  body["model"] = remote_.model;
  return body;
}

UpstreamAnswer Gateway::forward(const json& request, const GatewaySink& sink,
                                const std::string& path) const {
  UpstreamAnswer answer;
  std::string captured;
  bool begun = false;

  httplib::Client client(scheme_host_port_);
  const auto timeout = std::chrono::milliseconds(timeout_ms_);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);

  httplib::Request req;
  req.method = "POST";
  req.path = base_path_ + path;
  req.body = upstream_request(request).dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept-Encoding", "identity");  // stream bytes as they come, uncompressed
  if (!api_key_.empty()) req.set_header("Authorization", "Bearer " + api_key_);
  req.response_handler = [&](const httplib::Response& r) {
    answer.status = r.status;
    answer.content_type = r.get_header_value("Content-Type");
    answer.streamed = is_event_stream(answer.content_type);
    GatewaySink::Headers headers;
    for (const char* name : {"Retry-After", "x-request-id"})
      if (r.has_header(name)) headers.emplace_back(name, r.get_header_value(name));
    begun = true;
    sink.begin(answer.status, answer.content_type, headers);
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (captured.size() + size <= kMaxCapturedBytes) captured.append(data, size);
    if (!sink.write(data, size)) {
      answer.client_gone = true;
      return false;
    }
    return true;
  };

  const auto start = std::chrono::steady_clock::now();
  const httplib::Result result = client.send(req);
  answer.latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  if (!result && !answer.client_gone) {
    const bool timed_out = result.error() == httplib::Error::ConnectionTimeout ||
                           answer.latency_ms >= 0.95 * double(timeout_ms_);
    answer.error = str_cat("upstream ", remote_.url, ": ", httplib::to_string(result.error()),
                           timed_out ? " (timed out)" : "");
    if (!begun) {
      answer.status = timed_out ? 504 : 502;
      answer.content_type = "application/json";
      sink.begin(answer.status, answer.content_type, {});
      const std::string body =
          error_body(str_cat("The upstream provider did not answer: ", answer.error),
                     timed_out ? "upstream_timeout" : "upstream_unreachable");
      sink.write(body.data(), body.size());
    } else if (answer.streamed) {
      // The stream broke after it started: the status is sent, so say it as an event.
      const std::string event =
          "data: " + error_body("The upstream stream broke: " + answer.error, "upstream_error") +
          "\n\n";
      sink.write(event.data(), event.size());
    }
    return answer;
  }
  if (answer.status >= 200 && answer.status < 300 && !answer.client_gone) {
    if (answer.streamed) {
      answer.output = chat_output_from_sse(captured);
    } else {
      answer.output = chat_output_from_json(json::parse(captured, nullptr, false));
    }
  }
  return answer;
}

namespace {

// Bytes handed from the upstream thread to the HTTP worker that writes them.
struct Relay {
  std::mutex mu;
  std::condition_variable cv;
  bool begun = false;
  bool finished = false;
  bool cancelled = false;  // the client is gone (or the response was dropped)
  int status = 0;
  std::string content_type;
  GatewaySink::Headers headers;
  std::deque<std::string> chunks;
  std::thread upstream;
};

}  // namespace

void respond_via_gateway(const Gateway& gateway, json request, httplib::Response& res,
                         std::function<void(const UpstreamAnswer&)> on_complete,
                         const std::string& path) {
  auto relay = std::make_shared<Relay>();
  // The thread owns copies of everything it uses: it may outlive this handler call.
  relay->upstream = std::thread(
      [relay, gateway, request = std::move(request), on_complete = std::move(on_complete), path]() {
        GatewaySink sink;
        sink.begin = [&](int status, const std::string& content_type,
                         const GatewaySink::Headers& headers) {
          std::lock_guard lock(relay->mu);
          relay->begun = true;
          relay->status = status;
          relay->content_type = content_type;
          relay->headers = headers;
          relay->cv.notify_all();
        };
        sink.write = [&](const char* data, size_t size) {
          std::lock_guard lock(relay->mu);
          if (relay->cancelled) return false;
          relay->chunks.emplace_back(data, size);
          relay->cv.notify_all();
          return true;
        };
        UpstreamAnswer answer = gateway.forward(request, sink, path);
        {
          std::lock_guard lock(relay->mu);
          relay->finished = true;
          relay->cv.notify_all();
        }
        if (on_complete) on_complete(answer);
      });

  std::unique_lock lock(relay->mu);
  relay->cv.wait(lock, [&] { return relay->begun || relay->finished; });
  res.status = relay->status;
  for (const auto& [name, value] : relay->headers) res.set_header(name, value);
  if (!is_event_stream(relay->content_type)) {
    // A JSON answer (or an error) is passed through whole.
    relay->cv.wait(lock, [&] { return relay->finished; });
    std::string body;
    for (const std::string& c : relay->chunks) body += c;
    relay->chunks.clear();
    lock.unlock();
    relay->upstream.join();
    res.set_content(body, relay->content_type.empty() ? "application/json" : relay->content_type);
    return;
  }
  lock.unlock();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      relay->content_type,
      [relay](size_t, httplib::DataSink& sink) {
        std::unique_lock lock(relay->mu);
        relay->cv.wait(lock, [&] { return !relay->chunks.empty() || relay->finished; });
        std::deque<std::string> chunks;
        chunks.swap(relay->chunks);
        const bool finished = relay->finished;
        lock.unlock();
        for (const std::string& c : chunks) {
          if (!sink.write(c.data(), c.size())) {
            std::lock_guard guard(relay->mu);
            relay->cancelled = true;
            return false;
          }
        }
        if (finished) sink.done();
        return true;
      },
      [relay](bool) {
        // Called once the response is done with (sent, failed or dropped): stop the
        // upstream at its next chunk and wait for its thread.
        {
          std::lock_guard lock(relay->mu);
          relay->cancelled = true;
        }
        if (relay->upstream.joinable()) relay->upstream.join();
      });
}

}  // namespace muse::server

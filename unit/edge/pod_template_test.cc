#include "edge/pod_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kole::edge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

const PodIdentity kPod{.namespace_ = "edge", .name = "logger-n1", .node = "n1"};

PodSpec Build(std::string_view json) {
  absl::StatusOr<PodTemplate> t = ParsePodTemplate(json);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? BuildPodSpec(*t, kPod, "edge/logger", "0000000a") : PodSpec{};
}

TEST(PodTemplate, ContainersCommandArgsEnvAndRestartPolicy) {
  PodSpec spec = Build(R"({"metadata":{"labels":{},"annotations":{}},"spec":{
      "restartPolicy":"OnFailure",
      "containers":[
        {"name":"main","image":"busybox:1.36","command":["/bin/sh","-c"],"args":["echo hi"],
         "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],
         "ports":[{"containerPort":80}],"resources":{"limits":{"cpu":"1"}}},
        {"name":"side","command":["sleep","60"]}]}})");
  EXPECT_EQ(spec.key, "edge/logger");
  EXPECT_EQ(spec.revision, "0000000a");
  EXPECT_EQ(spec.restart_policy, "OnFailure");
  ASSERT_EQ(spec.containers.size(), 2u);
  EXPECT_EQ(spec.containers[0].name, "main");
  EXPECT_THAT(spec.containers[0].command, ElementsAre("/bin/sh", "-c"));
  EXPECT_THAT(spec.containers[0].args, ElementsAre("echo hi"));
  EXPECT_THAT(spec.containers[0].env, ElementsAre(Pair("A", "1"), Pair("B", "2")));
  EXPECT_THAT(spec.containers[1].command, ElementsAre("sleep", "60"));
  EXPECT_TRUE(spec.containers[1].args.empty());
}

TEST(PodTemplate, RestartPolicyDefaultsToAlways) {
  EXPECT_EQ(Build(R"({"spec":{"containers":[{"name":"a","command":["true"]}]}})").restart_policy,
            "Always");
}

TEST(PodTemplate, FieldRefsGiveThePodsIdentityLabelsAndAnnotations) {
  PodSpec spec = Build(R"({"metadata":{"labels":{"app":"logger"},"annotations":{"note":"x"}},
      "spec":{"containers":[{"name":"a","command":["true"],"env":[
        {"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},
        {"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}},
        {"name":"NS","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}},
        {"name":"APP","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},
        {"name":"NOTE","valueFrom":{"fieldRef":{"fieldPath":"metadata.annotations['note']"}}},
        {"name":"NONE","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['absent']"}}}]}]}})");
  ASSERT_EQ(spec.containers.size(), 1u);
  EXPECT_THAT(spec.containers[0].env,
              ElementsAre(Pair("NODE", "n1"), Pair("POD", "logger-n1"), Pair("NS", "edge"),
                          Pair("APP", "logger"), Pair("NOTE", "x"), Pair("NONE", "")));
}

TEST(PodTemplate, UnsupportedEnvSourcesAndInitContainersAreListedAsIgnored) {
  absl::StatusOr<PodTemplate> t = ParsePodTemplate(R"({"spec":{
      "initContainers":[{"name":"init","command":["true"]}],
      "containers":[{"name":"a","command":["true"],"envFrom":[{"configMapRef":{"name":"c"}}],
        "env":[{"name":"PW","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}},
               {"name":"IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}},
               {"name":"KEEP","value":"yes"}]}]}})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->ignored, ElementsAre("initContainers", "env PW: secretKeyRef",
                                      "env IP: fieldRef status.podIP", "container a: envFrom"));
  PodSpec spec = BuildPodSpec(*t, kPod, "k", "r");
  EXPECT_THAT(spec.containers[0].env, ElementsAre(Pair("KEEP", "yes")))
      << "variables from unsupported sources are left unset";
}

TEST(PodTemplate, VariablesExpandInEnvCommandAndArgsAsKubeletDoes) {
  PodSpec spec = Build(R"json({"spec":{"containers":[{"name":"a",
      "command":["$(BIN)"],
      "args":["--node=$(NODE)","$$(NODE)","$(UNSET)","cost $5","$(unterminated","end$"],
      "env":[{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},
             {"name":"BIN","value":"/usr/bin/$(NODE)-agent"},
             {"name":"EARLY","value":"$(LATE)"},
             {"name":"LATE","value":"late"}]}]}})json");
  ASSERT_EQ(spec.containers.size(), 1u);
  const ContainerSpec& c = spec.containers[0];
  EXPECT_THAT(c.command, ElementsAre("/usr/bin/n1-agent"));
  EXPECT_THAT(c.args,
              ElementsAre("--node=n1", "$(NODE)", "$(UNSET)", "cost $5", "$(unterminated", "end$"));
  EXPECT_THAT(c.env, ElementsAre(Pair("NODE", "n1"), Pair("BIN", "/usr/bin/n1-agent"),
                                 Pair("EARLY", "$(LATE)"), Pair("LATE", "late")))
      << "an env value sees only the variables defined before it";
}

TEST(PodTemplate, ExpandVarsLaterDefinitionsWin) {
  EXPECT_EQ(ExpandVars("$(A)", {{"A", "1"}, {"A", "2"}}), "2");
  EXPECT_EQ(ExpandVars("$$$(A)$", {{"A", "x"}}), "$x$");
  EXPECT_EQ(ExpandVars("", {}), "");
}

TEST(PodTemplate, WrongTypesAreErrorsNamingTheField) {
  struct Case {
    const char* json;
    const char* field;
  } cases[] = {
      {R"([])", "not a JSON object"},
      {R"({"spec":{"containers":[]})", "not a JSON object"},
      {R"({"metadata":{}})", "spec"},
      {R"({"spec":[]})", "spec"},
      {R"({"spec":{"restartPolicy":1}})", "spec.restartPolicy"},
      {R"({"spec":{"containers":{}}})", "spec.containers"},
      {R"({"spec":{"containers":[{"name":"a","command":"true"}]}})", "spec.containers[0].command"},
      {R"({"spec":{"containers":[{"name":"a","args":[1]}]}})", "spec.containers[0].args"},
      {R"({"spec":{"containers":[{"name":"a","env":[{"name":"A","value":1}]}]}})",
       "spec.containers[0].env[].value"},
      {R"({"metadata":{"labels":{"a":1}},"spec":{}})", "metadata.labels"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PodTemplate> t = ParsePodTemplate(c.json);
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.field)) << c.json;
  }
}

TEST(PodTemplate, NoContainersParsesToAnEmptyPodTheRuntimeRefuses) {
  absl::StatusOr<PodTemplate> t = ParsePodTemplate(R"({"spec":{}})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->containers.empty());
}

}  // namespace
}  // namespace kole::edge

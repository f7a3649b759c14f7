/*
 * Test-only declarations of DeepStream's custom-parser interface, written by rtdetr-edge from
 * NVIDIA's documented API (DeepStream SDK API reference, nvdsinfer_custom_impl.h), NOT NVIDIA's
 * header. The real build compiles against DeepStream's own sources/includes.
 */
#ifndef RTDETR_TEST_NVDSINFER_CUSTOM_IMPL_H
#define RTDETR_TEST_NVDSINFER_CUSTOM_IMPL_H

#include <vector>

#include "nvdsinfer.h"

/* NvDsInferParseDetectionParams: numClassesConfigured ("Parsing functions may only output objects
 * with class ID less than this value"), perClassPreclusterThreshold ("may only output an object
 * with detection confidence greater than or equal to the vector element indexed by the object's
 * class ID"), perClassPostclusterThreshold, perClassThreshold (deprecated reference)
 * https://docs.nvidia.com/metropolis/deepstream/9.0/sdk-api/structNvDsInferParseDetectionParams.html */
typedef struct {
    unsigned int numClassesConfigured;
    std::vector<float> perClassPreclusterThreshold;
    std::vector<float> perClassPostclusterThreshold;
    std::vector<float>& perClassThreshold = perClassPreclusterThreshold;
} NvDsInferParseDetectionParams;

/* NvDsInferParseCustomFunc: the bounding-box parser prototype (extern "C", named by parse-bbox-func-name):
 * bool (std::vector<NvDsInferLayerInfo> const &outputLayersInfo, NvDsInferNetworkInfo const &networkInfo,
 *       NvDsInferParseDetectionParams const &detectionParams, std::vector<NvDsInferObjectDetectionInfo> &objectList)
 * as nvdsinfer_custom_impl.h declares it (DeepStream SDK API reference; the header itself was not read in full
 * here: the signature is the one every custom parser implements, e.g. the NvDsInferParseCustomSSD-style
 * declarations that nvinfer's parse-bbox-func-name resolves with dlsym) */
typedef bool (*NvDsInferParseCustomFunc)(std::vector<NvDsInferLayerInfo> const& outputLayersInfo,
                                          NvDsInferNetworkInfo const& networkInfo,
                                          NvDsInferParseDetectionParams const& detectionParams,
                                          std::vector<NvDsInferObjectDetectionInfo>& objectList);

/* CHECK_CUSTOM_PARSE_FUNC_PROTOTYPE: checks a parser's definition against NvDsInferParseCustomFunc (same
 * header; NVIDIA's sample parsers end with it); here: the function converts to that pointer type. */
#define CHECK_CUSTOM_PARSE_FUNC_PROTOTYPE(customParseFunc) \
    static NvDsInferParseCustomFunc const rtdetr_check_##customParseFunc __attribute__((unused)) = customParseFunc

#endif

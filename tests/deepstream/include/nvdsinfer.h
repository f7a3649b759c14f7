/*
 * Test-only declarations of the DeepStream types the RT-DETR parser uses, written by rtdetr-edge
 * from NVIDIA's documented API (DeepStream SDK API reference, nvdsinfer.h), NOT NVIDIA's header.
 * The real build (the generated Makefile) compiles against DeepStream's own sources/includes.
 * Each type cites the page its fields and order were taken from.
 */
#ifndef RTDETR_TEST_NVDSINFER_H
#define RTDETR_TEST_NVDSINFER_H

/* https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/nvdsinfer_8h.html (NVDSINFER_MAX_DIMS 8) */
#define NVDSINFER_MAX_DIMS 8

/* NvDsInferDims: numDims, d[NVDSINFER_MAX_DIMS], numElements
 * https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/structNvDsInferDims.html */
typedef struct {
    unsigned int numDims;
    unsigned int d[NVDSINFER_MAX_DIMS];
    unsigned int numElements;
} NvDsInferDims;

/* NvDsInferDataType: FLOAT 0, HALF 1, INT8 2, INT32 3 (DeepStream 4.0-6.1 nvdsinfer.h source pages),
 * INT64 4 (added later; nvdsinferserver's InferDataType maps kInt64 = INT64 in infer_datatypes.h)
 * https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/nvdsinfer_8h.html
 * https://docs.nvidia.com/metropolis/deepstream/4.0.1/dev-guide/DeepStream_Development_Guide/baggage/nvdsinfer_8h_source.html */
typedef enum {
    FLOAT = 0,
    HALF = 1,
    INT8 = 2,
    INT32 = 3,
    INT64 = 4
} NvDsInferDataType;

/* NvDsInferLayerInfo: dataType, union { inferDims }, bindingIndex, layerName, buffer, isInput
 * https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/structNvDsInferLayerInfo.html */
typedef struct {
    NvDsInferDataType dataType;
    union {
        NvDsInferDims inferDims;
    };
    int bindingIndex;
    const char* layerName;
    void* buffer;
    int isInput;
} NvDsInferLayerInfo;

/* NvDsInferNetworkInfo: width, height, channels
 * https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/structNvDsInferNetworkInfo.html */
typedef struct {
    unsigned int width;
    unsigned int height;
    unsigned int channels;
} NvDsInferNetworkInfo;

/* NvDsInferObjectDetectionInfo: classId, left, top, width, height (float since DeepStream 5.0),
 * detectionConfidence ("must in the range [0.0,1.0]")
 * https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/structNvDsInferObjectDetectionInfo.html */
typedef struct {
    unsigned int classId;
    float left;
    float top;
    float width;
    float height;
    float detectionConfidence;
} NvDsInferObjectDetectionInfo;

#endif

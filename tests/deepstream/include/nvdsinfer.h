/*
 * Test-only declarations of the DeepStream types the RT-DETR parser uses, written by rtdetr-edge
 * from NVIDIA's documented API (DeepStream SDK API reference, nvdsinfer.h), NOT NVIDIA's header.
 * The real build (the generated Makefile) compiles against DeepStream's own sources/includes.
 * Each type cites the page its fields and order were taken from.
 */
#ifndef RTDETR_TEST_NVDSINFER_H
#define RTDETR_TEST_NVDSINFER_H

/* NVDSINFER_MAX_DIMS 8: nvdsinfer.h source, DeepStream 4.0.1 SDK API reference
 * https://docs.nvidia.com/metropolis/deepstream/4.0.1/dev-guide/DeepStream_Development_Guide/baggage/nvdsinfer_8h_source.html
 * (the file reference of 4.0.2 lists the same macro and structs:
 * https://docs.nvidia.com/metropolis/deepstream/4.0.2/dev-guide/DeepStream%20Development%20Guide/baggage/nvdsinfer_8h.html) */
#define NVDSINFER_MAX_DIMS 8

/* NvDsInferDims: numDims, d[NVDSINFER_MAX_DIMS], numElements (nvdsinfer.h source page above) */
typedef struct {
    unsigned int numDims;
    unsigned int d[NVDSINFER_MAX_DIMS];
    unsigned int numElements;
} NvDsInferDims;

/* NvDsInferDataType: FLOAT 0, HALF 1, INT8 2, INT32 3 (nvdsinfer.h source page above; DeepStream 6.1
 * Python API: https://docs.nvidia.com/metropolis/deepstream/6.1/python-api/PYTHON_API/NvDsInfer/NvDsInferDataType.html).
 * INT64 = 4: the 64-bit enumerator of later nvdsinfer.h releases; neither it nor its number was on an NVIDIA
 * page read here, so the number is an assumption only this harness relies on: the parser names INT64 and is
 * compiled against DeepStream's own header on the device (two third-party stand-in headers on GitHub also
 * use 4). A DeepStream whose header lacks INT64 fails to compile the parser, loudly. */
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

/* NvDsInferNetworkInfo: width, height, channels (nvdsinfer.h source page above) */
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

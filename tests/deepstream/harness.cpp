/*
 * Test harness: runs the DeepStream parser (nvdsparsebbox_rtdetr.cpp) as nvinfer would, once per
 * frame with that frame's slice of each output layer (inferDims without the batch).
 *
 *   harness WIDTH HEIGHT NUM_CLASSES THRESHOLDS BATCH LAYER...
 *     THRESHOLDS  comma-separated, one per class (perClassPreclusterThreshold)
 *     LAYER       NAME:DTYPE:DIMS:FILE   DTYPE float|half|int32|int64|int8, DIMS e.g. 300 or 300x4,
 *                 FILE the raw batch-major bytes of the whole batch
 * Prints per frame "frame B ok N" and N lines "B CLASS LEFT TOP WIDTH HEIGHT SCORE", or "frame B false".
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "nvdsinfer_custom_impl.h"

extern "C" bool NvDsInferParseRtdetr(std::vector<NvDsInferLayerInfo> const& outputLayersInfo,
                                     NvDsInferNetworkInfo const& networkInfo,
                                     NvDsInferParseDetectionParams const& detectionParams,
                                     std::vector<NvDsInferObjectDetectionInfo>& objectList);

struct Layer {
    std::string name;
    NvDsInferDataType type;
    size_t item;
    NvDsInferDims dims;
    std::vector<char> data;
};

static std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, sep)) out.push_back(part);
    return out;
}

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: harness W H C THRESHOLDS BATCH LAYER...\n");
        return 2;
    }
    NvDsInferNetworkInfo net{};
    net.width = static_cast<unsigned int>(std::atoi(argv[1]));
    net.height = static_cast<unsigned int>(std::atoi(argv[2]));
    net.channels = 3;
    NvDsInferParseDetectionParams params{};
    params.numClassesConfigured = static_cast<unsigned int>(std::atoi(argv[3]));
    for (const auto& t : split(argv[4], ',')) params.perClassPreclusterThreshold.push_back(std::strtof(t.c_str(), nullptr));
    const int batch = std::atoi(argv[5]);
    std::vector<Layer> layers;
    for (int a = 6; a < argc; ++a) {
        auto f = split(argv[a], ':');
        if (f.size() != 4) return 2;
        Layer l;
        l.name = f[0];
        if (f[1] == "float") { l.type = FLOAT; l.item = 4; }
        else if (f[1] == "half") { l.type = HALF; l.item = 2; }
        else if (f[1] == "int32") { l.type = INT32; l.item = 4; }
        else if (f[1] == "int64") { l.type = INT64; l.item = 8; }
        else if (f[1] == "int8") { l.type = INT8; l.item = 1; }
        else return 2;
        auto d = split(f[2], 'x');
        l.dims = NvDsInferDims{};
        l.dims.numDims = static_cast<unsigned int>(d.size());
        l.dims.numElements = 1;
        for (size_t i = 0; i < d.size(); ++i) {
            l.dims.d[i] = static_cast<unsigned int>(std::atoi(d[i].c_str()));
            l.dims.numElements *= l.dims.d[i];
        }
        std::ifstream in(f[3], std::ios::binary);
        l.data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        if (l.data.size() != static_cast<size_t>(batch) * l.dims.numElements * l.item) {
            std::fprintf(stderr, "%s: %zu bytes, expected %zu\n", f[3].c_str(), l.data.size(),
                         static_cast<size_t>(batch) * l.dims.numElements * l.item);
            return 2;
        }
        layers.push_back(std::move(l));
    }
    for (int b = 0; b < batch; ++b) {
        std::vector<NvDsInferLayerInfo> infos;
        for (size_t i = 0; i < layers.size(); ++i) {
            NvDsInferLayerInfo info{};
            info.dataType = layers[i].type;
            info.inferDims = layers[i].dims;
            info.bindingIndex = static_cast<int>(i + 1);
            info.layerName = layers[i].name.c_str();
            info.buffer = layers[i].data.data() + static_cast<size_t>(b) * layers[i].dims.numElements * layers[i].item;
            info.isInput = 0;
            infos.push_back(info);
        }
        std::vector<NvDsInferObjectDetectionInfo> objects;
        if (!NvDsInferParseRtdetr(infos, net, params, objects)) {
            std::printf("frame %d false\n", b);
            continue;
        }
        std::printf("frame %d ok %zu\n", b, objects.size());
        for (const auto& o : objects) {
            std::printf("%d %u %.9g %.9g %.9g %.9g %.9g\n", b, o.classId, o.left, o.top, o.width, o.height,
                        o.detectionConfidence);
        }
    }
    return 0;
}
